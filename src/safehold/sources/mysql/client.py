"""The ``mysql`` client: connection settings with the password resolved, the private option file for the
dump and client programs, the queries (tables, row counts, checksums) and the privilege check."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql

from safehold import proc, syntax
from safehold.errors import SourceError
from safehold.fsutil import private_dir
from safehold.secrets import resolve_secret
from safehold.sources.mysql.options import MySQLOptions

END_MARKER = b"-- Dump completed"
DUMP_TOOLS = ["mariadb-dump", "mysqldump"]
CLIENT_TOOLS = ["mariadb", "mysql"]
#: The Debian package that provides the tools (for the "not found" hint).
PACKAGE = "mariadb-client (or mysql-client)"


def quote(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


class Conn:
    """Connection settings with the password resolved (never shown)."""

    def __init__(self, host: str, port: int, socket: str | None, user: str, password: str | None) -> None:
        self.host, self.port, self.socket, self.user, self.password = host, port, socket, user, password

    @property
    def where(self) -> str:
        return f"{self.user}@{self.socket or f'{self.host}:{self.port}'}"

    def connect(
        self, database: str | None = None, *, read_timeout: float | None = None
    ) -> pymysql.connections.Connection[Any]:
        """A connection (autocommit); ``read_timeout``: no answer within that many seconds ends a query
        with an error instead of a wait without end."""
        try:
            return pymysql.connect(
                host=self.host,
                port=self.port,
                unix_socket=self.socket,
                user=self.user,
                password=(self.password or "").encode(),  # pymysql would encode a str as latin-1
                database=database,
                charset="utf8mb4",
                connect_timeout=10,
                read_timeout=read_timeout,
                autocommit=True,
            )
        except pymysql.MySQLError as exc:
            raise SourceError(
                proc.redact(f"cannot connect to MySQL as {self.where}: {exc}", [self.password]),
                hint="Check host, port, user and the password reference; 'safehold doctor' tests the access.",
            ) from None

    @contextlib.contextmanager
    def option_file(self) -> Iterator[str]:
        """A ``[client]`` option file (mode 0600 in a private folder, deleted afterwards) for
        ``--defaults-file=``, so that the password never appears in argv or the environment.

        Every value is quoted for the option-file syntax; one with a line break or NUL raises UnsafeValue
        (:func:`conn_from` checks earlier, naming the secret reference: this is the last line of defence).
        """
        values = {"user": self.user, "password": self.password}
        values.update({"socket": self.socket} if self.socket else {"host": self.host})
        lines = ["[client]"]
        for key, value in values.items():
            if value is not None:
                lines.append(f"{key}={syntax.mysql_option_value(value, what=f'the MySQL option {key}')}")
        if not self.socket:
            lines.append(f"port={int(self.port)}")
        with private_dir("safehold-my-") as d:
            path = d / "client.cnf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            yield str(path)


def conn_from(
    options: MySQLOptions, overrides: dict[str, Any] | None = None, *, owner: str = "mysql component"
) -> Conn:
    """The connection settings (``overrides`` from a restore win), every value checked for the option
    file before any program or connection sees it; ``owner`` names the component in errors."""
    o = overrides or {}
    password = resolve_secret(
        o.get("password", options.password), syntax.OPTION_FILE, owner=f"{owner}: password"
    )
    socket = o.get("socket", options.socket if "host" not in o and "port" not in o else None)
    host, user = str(o.get("host", options.host)), str(o.get("user", options.user))
    for what, value in (("host", host), ("user", user), ("socket", socket)):
        if value is not None:
            syntax.check(str(value), syntax.OPTION_FILE, what=f"{owner}: {what}")
    return Conn(host, int(o.get("port", options.port)), socket, user, password)


def query(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def base_tables(conn: Any, db: str) -> list[str]:
    rows = query(
        conn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_type='BASE TABLE' "
        "ORDER BY table_name",
        (db,),
    )
    return [str(r[0]) for r in rows]


def checksums(conn: Any, db: str, tables: list[str]) -> dict[str, int | None]:
    if not tables:
        return {}
    rows = query(conn, "CHECKSUM TABLE " + ", ".join(f"{quote(db)}.{quote(t)}" for t in tables))
    out: dict[str, int | None] = {}
    for full, value in rows:
        out[str(full).split(".", 1)[1]] = None if value is None else int(value)
    return out


def row_counts(conn: Any, db: str, tables: list[str]) -> dict[str, int]:
    # identifiers are quoted by quote, values never interpolated
    return {t: int(query(conn, f"SELECT COUNT(*) FROM {quote(db)}.{quote(t)}")[0][0]) for t in tables}  # noqa: S608


# --- privileges ---------------------------------------------------------------------------------------


def _schema_matches(pattern: str, db: str) -> bool:
    """Does a SCHEMA_PRIVILEGES entry (a LIKE pattern: % _ and backslash escapes) cover ``db``?"""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(parts), db, flags=re.DOTALL) is not None


@dataclass
class Privileges:
    """What the connected user lacks for a complete dump.

    ``missing``: ``{"db.*" | "mysql.proc" | "*.*": [privileges]}`` to grant; ``hidden``: the routines
    whose definition information_schema hides from the user (it would dump them as a comment, or not at
    all), each "FUNCTION `db`.`name` (definer x@y)"; ``unlisted``: databases whose routines the user
    cannot even list (no routine privilege there), so none can be ruled out.
    """

    grantee: str
    missing: dict[str, list[str]] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One sentence per problem, naming the objects."""
        out = [f"{self.grantee} lacks {', '.join(p)} on {t}" for t, p in self.missing.items()]
        if self.hidden:
            out.append(
                f"{self.grantee} cannot read the definition of {len(self.hidden)} routine(s), which the dump "
                f"would lose: {', '.join(self.hidden[:20])}" + (" ..." if len(self.hidden) > 20 else "")
            )
        if self.unlisted:
            out.append(
                f"{self.grantee} cannot list the routines of {', '.join(self.unlisted)} (no routine "
                "privilege there), so it cannot tell whether the dump would lose some"
            )
        return out


def privileges(conn: Any, options: MySQLOptions) -> Privileges:
    """Check what a dump of ``options.databases`` would lose or fail on, for the connected user.

    Needed on each database: SELECT (the data), SHOW VIEW where it has views, TRIGGER and EVENT when
    those are dumped (without them the user cannot see whether there are any, and the dump silently
    omits them). Routines fail closed exactly when one would be missing: when the user can read every
    routine definition (SELECT on mysql.proc or the mysql schema, global SELECT, SHOW_ROUTINE, SHOW CREATE
    ROUTINE) nothing is needed; otherwise, where it holds a routine privilege on the database (EXECUTE,
    ALTER ROUTINE or CREATE ROUTINE: the app user with ALL), information_schema.ROUTINES lists every
    routine and the ones whose ROUTINE_DEFINITION is NULL are those it cannot dump; where it holds none,
    it cannot list them at all. Grants of CURRENT_USER only (global, schema, table); privileges that come
    only through a role are not seen and are reported as missing.
    """
    current = str(query(conn, "SELECT CURRENT_USER()")[0][0])
    user, _, host = current.rpartition("@")
    grantee = f"'{user}'@'{host}'"
    mariadb = "mariadb" in str(query(conn, "SELECT VERSION()")[0][0]).lower()
    glob = {
        str(r[0])
        for r in query(
            conn, "SELECT privilege_type FROM information_schema.user_privileges WHERE grantee=%s", (grantee,)
        )
    }
    schema = [
        (str(a), str(b))
        for a, b in query(
            conn,
            "SELECT table_schema, privilege_type FROM information_schema.schema_privileges WHERE grantee=%s",
            (grantee,),
        )
    ]
    table = {
        (str(a), str(b), str(c))
        for a, b, c in query(
            conn,
            "SELECT table_schema, table_name, privilege_type FROM information_schema.table_privileges "
            "WHERE grantee=%s",
            (grantee,),
        )
    }

    def has(priv: str, db: str) -> bool:
        return priv in glob or any(p == priv and _schema_matches(s, db) for s, p in schema)

    out = Privileges(grantee)
    for db in options.databases:
        needed = ["SELECT"]
        views = query(
            conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_type='VIEW'",
            (db,),
        )
        if int(views[0][0]) or not has("SELECT", db):  # without SELECT it cannot see the views either
            needed.append("SHOW VIEW")
        if options.triggers:
            needed.append("TRIGGER")
        if options.events:
            needed.append("EVENT")
        lack = [p for p in needed if not has(p, db)]
        if lack:
            out.missing[f"{quote(db)}.*"] = lack
    reads_all = (
        has("SELECT", "mysql")
        or ("mysql", "proc", "SELECT") in table
        or bool({"SHOW_ROUTINE", "SHOW CREATE ROUTINE"} & glob)
    )
    if options.routines and not reads_all:
        for db in options.databases:
            if not any(has(p, db) for p in ("EXECUTE", "ALTER ROUTINE", "CREATE ROUTINE")):
                out.unlisted.append(db)
                continue
            rows = query(
                conn,
                "SELECT routine_type, routine_name, definer FROM information_schema.routines "
                "WHERE routine_schema=%s AND routine_definition IS NULL ORDER BY routine_type, routine_name",
                (db,),
            )
            out.hidden += [f"{t} {quote(db)}.{quote(str(n))} (definer {d})" for t, n, d in rows]
        if out.hidden or out.unlisted:
            if mariadb:
                out.missing["mysql.proc"] = ["SELECT"]
            else:  # MySQL 8.0.20+: the data dictionary replaced mysql.proc
                out.missing["*.*"] = ["SHOW_ROUTINE"]
    return out


def missing_privileges(conn: Any, options: MySQLOptions) -> tuple[str, dict[str, list[str]]]:
    """``(grantee, {target: [privileges to grant]})``: :func:`privileges` without the object names."""
    found = privileges(conn, options)
    return found.grantee, found.missing


def grant_statements(grantee: str, missing: dict[str, list[str]]) -> list[str]:
    """The exact GRANT statements that add ``missing`` privileges to ``grantee``."""
    return [f"GRANT {', '.join(privs)} ON {target} TO {grantee};" for target, privs in missing.items()]


def check_mysql_privileges(options: MySQLOptions | dict[str, Any]) -> list[str]:
    """For ``safehold doctor``: the missing privileges, then the GRANT statements to run (empty when all
    are there). Raises SourceError when the server cannot be reached."""
    opts = options if isinstance(options, MySQLOptions) else MySQLOptions.model_validate(options)
    conn = conn_from(opts).connect()
    try:
        found = privileges(conn, opts)
    finally:
        conn.close()
    if not found.missing:
        return []
    return found.problems() + grant_statements(found.grantee, found.missing)
