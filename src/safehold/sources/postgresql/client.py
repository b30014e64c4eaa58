"""The PostgreSQL client side: connection settings checked before anything connects, queries the backup,
preflight, restore and drills run, and the exported snapshot a dump is taken in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from safehold import proc, syntax
from safehold.errors import SourceError
from safehold.secrets import resolve_secret
from safehold.sources.postgresql.options import PostgreSQLOptions

SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'"
)
#: What a drill counts in a scratch database besides tables (views, functions... a dump must bring back).
PG_OBJECT_COUNTS = {
    "functions": "SELECT count(*) FROM information_schema.routines "
    "WHERE routine_schema NOT IN ('pg_catalog', 'information_schema')",
    "triggers": "SELECT count(DISTINCT trigger_name) FROM information_schema.triggers "
    "WHERE trigger_schema NOT IN ('pg_catalog', 'information_schema')",
    "views": "SELECT count(*) FROM information_schema.views "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    "sequences": "SELECT count(*) FROM information_schema.sequences "
    "WHERE sequence_schema NOT IN ('pg_catalog', 'information_schema')",
}
#: The Debian package that provides pg_dump, pg_restore and pg_dumpall (for the "not found" hint).
PACKAGE = "postgresql-client"
USER_TABLES = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1, 2"
)
USER_RELATIONS = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)


class Conn:
    """Checked connection settings: libpq arguments and environment for the tools, psycopg connections."""

    def __init__(self, host: str, port: int, user: str, password: str | None) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        env = {"PGCONNECT_TIMEOUT": "10"}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def args(self) -> list[str]:
        return ["--no-password", f"--host={self.host}", f"--port={self.port}", f"--username={self.user}"]

    def connect(self, dbname: str, autocommit: bool = True) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=dbname,
                connect_timeout=10,
                autocommit=autocommit,
            )
        except psycopg.Error as exc:
            raise SourceError(
                proc.redact(
                    f"cannot connect to PostgreSQL database {dbname} as {self.where}: {exc}".strip(),
                    [self.password],
                ),
                hint="Check host, port, user and the password reference.",
            ) from None
        return conn


def conn_from(
    o: PostgreSQLOptions, overrides: dict[str, Any] | None = None, *, owner: str = "postgresql component"
) -> Conn:
    """The connection settings (``overrides`` from a restore win), checked before anything connects;
    ``owner`` names the component in errors."""
    ov = overrides or {}
    password = resolve_secret(ov.get("password", o.password), syntax.CREDENTIAL, owner=f"{owner}: password")
    host, user = str(ov.get("host", o.host)), str(ov.get("user", o.user))
    syntax.check(host, syntax.CREDENTIAL, what=f"{owner}: host")
    syntax.check(user, syntax.CREDENTIAL, what=f"{owner}: user")
    return Conn(host, int(ov.get("port", o.port)), user, password)


def dbname_arg(option: str, name: str) -> str:
    """``--dbname=`` (or another option) with ``name`` as a connection string that can only name a
    database: the tools would read a bare name holding ``=`` as connection settings."""
    return f"{option}=dbname={syntax.libpq_value(name, what=f'database name {name!r}')}"


def table_statistics(conn: psycopg.Connection[Any], checksums: bool) -> dict[str, dict[str, Any]]:
    """``{"schema.table": {"rows": n, "checksum": md5 or None, "table_bytes": n, "index_bytes": n}}`` for
    every user table, in ``conn``'s current transaction/snapshot (sizes: pg_table_size, pg_indexes_size)."""
    conn.execute(SESSION_SETTINGS)
    out: dict[str, dict[str, Any]] = {}
    for schema, table in conn.execute(USER_TABLES).fetchall():
        ident = sql.Identifier(schema, table)
        if checksums:
            q = sql.SQL(
                "SELECT count(*), "
                "md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {} t"
            ).format(ident)
        else:
            q = sql.SQL("SELECT count(*), NULL FROM {} t").format(ident)
        row = conn.execute(q).fetchone()
        assert row is not None
        out[f"{schema}.{table}"] = {"rows": int(row[0]), "checksum": row[1]}
    for schema, table, data, index in conn.execute(
        "SELECT n.nspname, c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm')"
    ).fetchall():
        entry = out.get(f"{schema}.{table}")
        if entry is not None:  # data with TOAST, free-space and visibility maps; all its indexes
            entry["table_bytes"], entry["index_bytes"] = int(data), int(index)
    return out


@contextmanager
def exported_snapshot(conn: psycopg.Connection[Any]) -> Iterator[str | None]:
    """A REPEATABLE READ transaction on ``conn`` with its exported snapshot id (None if not possible)."""
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        snap_id = str(row[0]) if row else None
    except psycopg.Error:
        conn.rollback()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap_id = None
    try:
        yield snap_id
    finally:
        conn.rollback()


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (for GRANT lines shown to the user)."""
    return '"' + name.replace('"', '""') + '"'


#: Relations the connected user cannot SELECT (preflight), and schemas it cannot use.
UNREADABLE_RELATIONS = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', "
    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
    "AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2"
)
UNUSABLE_SCHEMAS = (
    "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND nspname NOT LIKE 'pg_toast%%' AND nspname NOT LIKE 'pg_temp%%' "
    "AND NOT has_schema_privilege(oid, 'USAGE') ORDER BY 1"
)
