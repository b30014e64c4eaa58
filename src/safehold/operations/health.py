"""Health checks after a restore (and, later, in drills): HTTP status, a DB query, Redis PING, a command.

Each check returns a result and never raises; a failing check is reported, it does not undo a restore.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from safehold.secrets import SecretRef


@dataclass
class HealthResult:
    name: str
    kind: str
    ok: bool
    message: str
    seconds: float


def run_health_checks(checks: list[Any], components: dict[str, dict[str, Any]]) -> list[HealthResult]:
    """Run every configured check; ``components`` maps component names to their options."""
    return [_run_one(c, components) for c in checks]


def _run_one(check: Any, components: dict[str, dict[str, Any]]) -> HealthResult:
    t0 = time.monotonic()
    try:
        ok, msg = _dispatch(check, components)
    except Exception as exc:
        ok, msg = False, f"{type(exc).__name__}: {exc}"
    return HealthResult(check.name, check.kind, ok, msg, round(time.monotonic() - t0, 3))


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    ref = value if isinstance(value, SecretRef) else SecretRef.model_validate(value)
    return ref.resolve()


def _dispatch(check: Any, components: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    if check.kind == "http":
        import httpx

        r = httpx.get(check.url, timeout=check.timeout, follow_redirects=True)
        if r.status_code != check.expect_status:
            return False, f"HTTP {r.status_code}, expected {check.expect_status}"
        if check.contains and check.contains not in r.text:
            return False, f"response does not contain {check.contains!r}"
        return True, f"HTTP {r.status_code}"
    if check.kind == "mysql":
        import pymysql

        if check.component:
            o = components[check.component]
            kw: dict[str, Any] = {
                "host": o.get("host", "127.0.0.1"),
                "port": o.get("port", 3306),
                "user": o.get("user", "root"),
                "password": _secret(o.get("password")) or "",
            }
            if o.get("socket"):
                kw["unix_socket"] = o["socket"]
        else:
            u = urlsplit(_secret(check.dsn) or "")
            kw = {
                "host": u.hostname or "127.0.0.1",
                "port": u.port or 3306,
                "user": unquote(u.username or ""),
                "password": unquote(u.password or ""),
                "database": u.path.lstrip("/") or None,
            }
        conn = pymysql.connect(connect_timeout=int(check.timeout), **kw)
        try:
            with conn.cursor() as cur:
                cur.execute(check.query)
                row = cur.fetchone()
        finally:
            conn.close()
        return True, f"query ok: {row!r}"[:200]
    if check.kind == "redis":
        import redis

        o = components[check.component]
        client = redis.Redis(
            host=o.get("host", "127.0.0.1"),
            port=o.get("port", 6379),
            unix_socket_path=o.get("socket"),
            username=o.get("username"),
            password=_secret(o.get("password")),
            socket_timeout=check.timeout,
        )
        try:
            return bool(client.ping()), "PONG"
        finally:
            client.close()
    proc = subprocess.run(
        check.command, capture_output=True, timeout=check.timeout, check=False, stdin=subprocess.DEVNULL
    )
    tail = proc.stdout.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return proc.returncode == 0, f"exit {proc.returncode} {tail[0]}".strip()
