"""Checks of data services: the database exists and holds tables, Redis answers and holds keys.

A ``component`` check reads the component's connection settings (after a restore: redirected to where
the restore put the data, ``--db-host``/``--db-name``...), and checks each of its databases; a ``dsn``
check reads one URL (a secret). Values go to the drivers as parameters, never into a connection string.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from safehold.config.healthchecks import HealthCheck
from safehold.health.base import CheckFailed, Targets, component_options, secret

_MYSQL_TABLES = (
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
    "AND table_type = 'BASE TABLE'"
)
_PG_TABLES = (
    "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
)


def _servers(
    check: HealthCheck, targets: Targets, default_port: int, default_user: str
) -> list[dict[str, Any]]:
    """One connection setting per database to check: host, port, user, password, database (, socket)."""
    if check.dsn is not None:
        url = urlsplit(secret(check.dsn) or "")
        db = unquote(url.path.lstrip("/"))
        if not db:
            raise CheckFailed("the dsn names no database (…/DATABASE at its end)")
        return [
            {
                "host": url.hostname or "127.0.0.1",
                "port": url.port or default_port,
                "user": unquote(url.username or default_user),
                "password": unquote(url.password or ""),
                "database": db,
            }
        ]
    o: Mapping[str, Any] = component_options(check, targets)
    names = [str(o["database"])] if o.get("database") else [str(d) for d in o.get("databases", [])]
    if not names:
        raise CheckFailed(f"component {check.component!r} names no database")
    base = {
        "host": o.get("host", "127.0.0.1"),
        "port": int(o.get("port", default_port)),
        "user": o.get("user", default_user),
        "password": secret(o.get("password")) or "",
        "socket": o.get("socket"),
    }
    return [{**base, "database": n} for n in names]


def _verdict(check: HealthCheck, counts: list[tuple[str, int]], extra: str) -> str:
    few = [f"{db} holds {n} table(s)" for db, n in counts if n < check.min_tables]
    if few:
        raise CheckFailed(f"{'; '.join(few)}, at least {check.min_tables} expected")
    return ", ".join(f"{db}: {n} table(s)" for db, n in counts) + extra


def mysql(check: HealthCheck, targets: Targets) -> str:
    import pymysql

    counts: list[tuple[str, int]] = []
    extra = ""
    for i, s in enumerate(_servers(check, targets, 3306, "root")):
        kw: dict[str, Any] = {
            "host": s["host"],
            "port": s["port"],
            "user": s["user"],
            "password": s["password"],
        }
        if s.get("socket"):
            kw["unix_socket"] = s["socket"]
        try:
            conn = pymysql.connect(database=s["database"], connect_timeout=max(1, int(check.timeout)), **kw)
        except pymysql.err.OperationalError as exc:
            raise CheckFailed(
                f"database {s['database']} on {s['host']}:{s['port']}: {exc.args[-1]}"
            ) from None
        try:
            with conn.cursor() as cur:
                cur.execute(_MYSQL_TABLES)
                row = cur.fetchone()
                counts.append((s["database"], int(row[0]) if row else 0))
                if i == 0 and check.query:
                    try:
                        cur.execute(check.query)
                        extra = f"; query ok: {cur.fetchone()!r}"[:120]
                    except pymysql.MySQLError as exc:
                        raise CheckFailed(f"{s['database']}: the query failed: {exc.args[-1]}") from None
        finally:
            conn.close()
    return _verdict(check, counts, extra)


def postgresql(check: HealthCheck, targets: Targets) -> str:
    import psycopg

    counts: list[tuple[str, int]] = []
    extra = ""
    for i, s in enumerate(_servers(check, targets, 5432, "postgres")):
        try:
            conn = psycopg.connect(
                host=s["host"],
                port=s["port"],
                user=s["user"],
                password=s["password"] or None,
                dbname=s["database"],
                connect_timeout=max(1, int(check.timeout)),
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise CheckFailed(f"database {s['database']} on {s['host']}:{s['port']}: {first}") from None
        with conn:
            row = conn.execute(_PG_TABLES).fetchone()
            counts.append((s["database"], int(row[0]) if row else 0))
            if i == 0 and check.query:
                try:
                    extra = f"; query ok: {conn.execute(check.query).fetchone()!r}"[:120]
                except psycopg.Error as exc:
                    raise CheckFailed(f"{s['database']}: the query failed: {str(exc).strip()}") from None
    return _verdict(check, counts, extra)


def sqlite(check: HealthCheck, targets: Targets) -> str:
    path = check.path or str(component_options(check, targets).get("path", ""))
    if not os.path.isfile(path):
        raise CheckFailed(f"no database file {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=check.timeout)
    except sqlite3.Error as exc:
        raise CheckFailed(f"{path}: {exc}") from None
    try:
        result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if result != ["ok"]:
            raise CheckFailed(f"{path}: quick_check: {'; '.join(map(str, result[:3]))}")
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise CheckFailed(f"{path}: {exc}") from None
    finally:
        conn.close()
    return _verdict(check, [(path, int(n))], "; integrity ok")


def redis_check(check: HealthCheck, targets: Targets) -> str:
    import redis

    o = component_options(check, targets)
    client = redis.Redis(
        host=o.get("host", "127.0.0.1"),
        port=int(o.get("port", 6379)),
        unix_socket_path=o.get("socket"),
        username=o.get("username"),
        password=secret(o.get("password")),
        socket_timeout=check.timeout,
        socket_connect_timeout=check.timeout,
    )
    where = o.get("socket") or f"{o.get('host', '127.0.0.1')}:{o.get('port', 6379)}"
    try:
        client.ping()
        keyspace = client.info("keyspace")
    except redis.RedisError as exc:
        raise CheckFailed(f"redis at {where}: {exc}") from None
    finally:
        client.close()
    keys = sum(int(v.get("keys", 0)) for v in keyspace.values() if isinstance(v, dict))
    if keys < check.min_keys:
        raise CheckFailed(
            f"redis at {where} answers PING but holds {keys} key(s), at least {check.min_keys} expected"
        )
    return f"PONG; {keys} key(s)"
