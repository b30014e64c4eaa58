"""Checks of the host: supervisor programs, systemd units, crontab lines, writable folders, fresh logs and
any command (a queue worker that processed a job lately: ``artisan queue:monitor``...).

Programs run through :func:`safehold.proc.run_capture` (own session, deadline, no shell); names that
become arguments were validated by the schema (never an option, no whitespace).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

from safehold.config.duration import parse_duration
from safehold.config.healthchecks import HealthCheck
from safehold.health.base import CheckFailed, Targets, program_output
from safehold.proc import run_capture


def supervisor(check: HealthCheck, _targets: Targets) -> str:
    """``supervisorctl status PROGRAM``: every process it lists is RUNNING (``group:*`` lists several)."""
    assert check.program is not None
    conf = ["-c", check.path] if check.path else []
    res = run_capture(["supervisorctl", *conf, "status", check.program], timeout=check.timeout)
    out = program_output(res, "supervisorctl")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    states = [(r[0], r[1]) for r in rows if len(r) >= 2]
    if not states:
        raise CheckFailed(f"supervisorctl status {check.program}: {res.last_error() or 'no output'}")
    bad = [f"{name} {state}" for name, state in states if state != "RUNNING"]
    if bad or (res.returncode not in (0, None) and not states):
        raise CheckFailed(", ".join(bad) or f"supervisorctl: {res.last_error()}")
    return f"{len(states)} process(es) RUNNING"


def systemd(check: HealthCheck, _targets: Targets) -> str:
    assert check.unit is not None
    res = run_capture(["systemctl", "is-active", "--", check.unit], timeout=check.timeout)
    state = program_output(res, "systemctl").strip() or res.last_error()
    if state != "active" or not res.ok:
        raise CheckFailed(f"{check.unit} is {state or 'unknown'}")
    return f"{check.unit} is active"


def _normal(text: str) -> str:
    return " ".join(text.split())


def crontab(check: HealthCheck, _targets: Targets) -> str:
    """The user's crontab (``crontab -l -u USER``) or a cron file holds an active line containing
    ``contains`` (runs of whitespace compare as one space; comments do not count)."""
    assert check.contains is not None
    if check.path is not None:
        try:
            with open(check.path, encoding="utf-8", errors="replace") as f:
                text = f.read(1 << 20)
        except OSError as exc:
            raise CheckFailed(f"cannot read {check.path}: {exc.strerror or exc}") from None
        where = check.path
    else:
        assert check.user is not None
        res = run_capture(["crontab", "-l", "-u", check.user], timeout=check.timeout)
        text = program_output(res, "crontab")
        if not res.ok:
            raise CheckFailed(f"crontab of {check.user}: {res.last_error()}")
        where = f"crontab of {check.user}"
    want = _normal(check.contains)
    lines = [
        _normal(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    hit = next((line for line in lines if want in line), None)
    if hit is None:
        raise CheckFailed(f"{where} has no line containing {check.contains!r}")
    return f"{where}: {hit[:120]}"


def writable(check: HealthCheck, _targets: Targets) -> str:
    """A new file can be created (exclusively), written, synced and removed in the folder; the folder's
    times are put back, so that the check leaves no trace (a restored tree stays identical)."""
    assert check.path is not None
    if not os.path.isdir(check.path):
        raise CheckFailed(f"{check.path} is not a folder")
    before = os.stat(check.path)
    try:
        fd, name = tempfile.mkstemp(prefix=".safehold-check-", dir=check.path)
    except OSError as exc:
        raise CheckFailed(f"cannot create a file in {check.path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, b"safehold health check\n")
        os.fsync(fd)
    except OSError as exc:
        raise CheckFailed(f"cannot write in {check.path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
        os.unlink(name)
        with contextlib.suppress(OSError):
            os.utime(check.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return f"{check.path} is writable"


def log(check: HealthCheck, _targets: Targets, *, now: float | None = None) -> str:
    assert check.path is not None and check.max_age is not None
    try:
        mtime = os.stat(check.path).st_mtime
    except OSError as exc:
        raise CheckFailed(f"{check.path}: {exc.strerror or exc}") from None
    age = (now if now is not None else time.time()) - mtime
    limit = parse_duration(check.max_age).total_seconds()
    minutes = f"{max(age, 0) / 60:.1f} minute(s) ago"
    if age > limit:
        raise CheckFailed(f"{check.path} was last written {minutes}, longer ago than {check.max_age}")
    return f"{check.path} written {minutes}"


def command(check: HealthCheck, _targets: Targets) -> str:
    assert check.command is not None
    res = run_capture(list(check.command), cwd=check.cwd, timeout=check.timeout)
    out = program_output(res, check.command[0])
    last = (out.strip().splitlines() or [""])[-1][:120]
    if not res.ok:
        raise CheckFailed(f"{check.command[0]}: {res.last_error()}" + (f" ({last})" if last else ""))
    if check.contains and check.contains not in out:
        raise CheckFailed(f"{check.command[0]} succeeded, but its output does not contain {check.contains!r}")
    return f"exit 0 {last}".strip()
