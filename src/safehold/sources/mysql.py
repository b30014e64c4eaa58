"""The ``mysql`` source (MySQL and MariaDB): streamed mariadb-dump/mysqldump dumps and their restore.

Layout of the component folder, per database ``<db>``::

    <db>/full_dump.sql            mariadb-dump --single-transaction --routines --triggers --events --hex-blob
    <db>/schema_only.sql          the same without data (a separate, later run)
    <db>/table_statistics.json    rows per table as read from full_dump.sql itself, checksums (see below)
    <db>/table_statistics.txt     the same, readable
    <db>/tables/<table>.tsv       chosen tables as readable text (``text_exports``)

Consistency of the statistics: the row counts are counted *in the dump stream* while it passes into the
repository, so they describe exactly what ``full_dump.sql`` contains. ``CHECKSUM TABLE`` runs on the live
server right before and right after the dump; when both agree the table did not change during the dump
and the checksum is recorded with ``checksum_exact: true`` (a restore must reproduce it); otherwise it is
kept for information only. The schema-only dump and text exports are separate, later reads.

Privileges (MariaDB 10.11, measured): ``SELECT, SHOW VIEW, TRIGGER, EVENT`` on the database and
``SELECT ON mysql.proc``. Without SHOW VIEW or EVENT the dump fails; without TRIGGER or mysql.proc it
*silently* omits triggers or routines, so a backup checks these first and fails closed
(:func:`check_mysql_privileges` is what ``safehold doctor`` prints). LOCK TABLES, RELOAD and PROCESS are
not needed with ``--single-transaction --no-tablespaces``.

The password never appears in argv: the dump and client programs read it from a private option file,
created mode 0600 in a private directory and deleted afterwards. It is passed as ``--defaults-file=``
(the first argument), so it is the *only* option file they read: no ``/etc/mysql/my.cnf``, no
``~/.my.cnf``, the same settings pymysql uses. Every value written into it (user, password, host, socket)
is refused when it holds a line break or NUL (:mod:`safehold.syntax`): a password from a web-writable
``.env`` must never add options such as ``plugin-dir`` or ``default-auth``. Database names follow ``--``
on the command line, so a name starting with ``-`` is never read as an option.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import pymysql
from pydantic import BaseModel, ConfigDict, Field, model_validator

from safehold import proc, syntax
from safehold.config.secrets import SecretRef, resolve_secret
from safehold.errors import SourceError
from safehold.fsutil import private_dir
from safehold.sources import dbstats
from safehold.sources.base import (
    ComponentReader,
    ComponentWriter,
    RestoreReport,
    SourceContext,
    stream_of,
)

END_MARKER = b"-- Dump completed"
DUMP_TOOLS = ["mariadb-dump", "mysqldump"]
CLIENT_TOOLS = ["mariadb", "mysql"]
#: The Debian package that provides the tools (for the "not found" hint).
PACKAGE = "mariadb-client (or mysql-client)"


class MySQLOptions(BaseModel):
    """Settings of a ``mysql`` component."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] = Field(
        min_length=1, description="Databases to dump, one stream each.", examples=[["askproai_db"]]
    )
    host: str = Field(default="127.0.0.1", description="Server host name or address.", examples=["127.0.0.1"])
    port: int = Field(default=3306, description="Server TCP port.", examples=[3306])
    socket: str | None = Field(
        default=None,
        description="Unix socket path; when set it is used instead of host and port.",
        examples=["/run/mysqld/mysqld.sock"],
    )
    user: str = Field(default="root", description="User to connect as.", examples=["backup"])
    password: SecretRef | None = Field(
        default=None,
        description="Where the password comes from (env, file, dotenv key or command); none for no password.",
        examples=[{"file": "/var/www/app/.env", "key": "DB_PASSWORD"}],
    )
    dump_tool: str | None = Field(
        default=None,
        description="Dump program name or path; default the first of mariadb-dump, mysqldump on PATH.",
        examples=["/usr/bin/mariadb-dump"],
    )
    client_tool: str | None = Field(
        default=None,
        description="Client program used to load a dump on restore; default mariadb, then mysql.",
        examples=["/usr/bin/mariadb"],
    )
    routines: bool = Field(default=True, description="Dump stored procedures and functions.", examples=[True])
    triggers: bool = Field(default=True, description="Dump triggers.", examples=[True])
    events: bool = Field(default=True, description="Dump scheduled events.", examples=[True])
    schema_only: bool = Field(
        default=True, description="Also store a schema-only dump beside the full dump.", examples=[True]
    )
    checksums: bool = Field(
        default=False,
        description="Also run CHECKSUM TABLE before and after the dump, so that restores verify checksums "
        "as well as row counts (reads every table twice more; row counts always come from the dump itself).",
        examples=[True],
    )
    check_privileges: bool = Field(
        default=True,
        description="Fail the backup when the user lacks a privilege without which the dump silently "
        "omits triggers or routines.",
        examples=[True],
    )
    text_exports: list[str] = Field(
        default_factory=list,
        description="Tables also exported as readable tab-separated text: 'table' (with one database) "
        "or 'database.table'.",
        examples=[["retell_agents", "phone_numbers"]],
    )
    extra_dump_args: list[str] = Field(
        default_factory=list,
        description="Further arguments for the dump program (never a password).",
        examples=[["--max-allowed-packet=512M"]],
    )

    @model_validator(mode="after")
    def _check(self) -> MySQLOptions:
        for entry in self.text_exports:
            if "." not in entry and len(self.databases) != 1:
                raise ValueError(
                    f"text export {entry!r} must be written 'database.table' with several databases"
                )
            if "." in entry and entry.split(".", 1)[0] not in self.databases:
                raise ValueError(f"text export {entry!r} names a database that is not dumped")
        if any(a.startswith(("-p", "--password")) for a in self.extra_dump_args):
            raise ValueError("extra_dump_args must not carry a password; use 'password' (a secret reference)")
        return self

    def exports_for(self, db: str) -> list[str]:
        out = []
        for entry in self.text_exports:
            if "." in entry:
                d, t = entry.split(".", 1)
                if d == db:
                    out.append(t)
            else:
                out.append(entry)
        return out


def _q(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


class _Conn:
    """Connection settings with the password resolved (never shown)."""

    def __init__(self, host: str, port: int, socket: str | None, user: str, password: str | None) -> None:
        self.host, self.port, self.socket, self.user, self.password = host, port, socket, user, password

    @property
    def where(self) -> str:
        return f"{self.user}@{self.socket or f'{self.host}:{self.port}'}"

    def connect(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
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
        (:func:`_conn_from` checks earlier, naming the secret reference: this is the last line of defence).
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


def _conn_from(
    options: MySQLOptions, overrides: dict[str, Any] | None = None, *, owner: str = "mysql component"
) -> _Conn:
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
    return _Conn(host, int(o.get("port", options.port)), socket, user, password)


def _query(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _base_tables(conn: Any, db: str) -> list[str]:
    rows = _query(
        conn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_type='BASE TABLE' "
        "ORDER BY table_name",
        (db,),
    )
    return [str(r[0]) for r in rows]


def _checksums(conn: Any, db: str, tables: list[str]) -> dict[str, int | None]:
    if not tables:
        return {}
    rows = _query(conn, "CHECKSUM TABLE " + ", ".join(f"{_q(db)}.{_q(t)}" for t in tables))
    out: dict[str, int | None] = {}
    for full, value in rows:
        out[str(full).split(".", 1)[1]] = None if value is None else int(value)
    return out


def _row_counts(conn: Any, db: str, tables: list[str]) -> dict[str, int]:
    # identifiers are quoted by _q, values never interpolated
    return {t: int(_query(conn, f"SELECT COUNT(*) FROM {_q(db)}.{_q(t)}")[0][0]) for t in tables}  # noqa: S608


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


def missing_privileges(conn: Any, options: MySQLOptions) -> tuple[str, dict[str, list[str]]]:
    """``(grantee, {"db.*" or "mysql.proc": [missing privileges]})`` for the connected user.

    Reads the grant tables in information_schema (global, schema and table grants of CURRENT_USER;
    privileges that come only through a role are not seen and are reported as missing).
    """
    current = str(_query(conn, "SELECT CURRENT_USER()")[0][0])
    user, _, host = current.rpartition("@")
    grantee = f"'{user}'@'{host}'"
    glob = {
        str(r[0])
        for r in _query(
            conn, "SELECT privilege_type FROM information_schema.user_privileges WHERE grantee=%s", (grantee,)
        )
    }
    schema = [
        (str(a), str(b))
        for a, b in _query(
            conn,
            "SELECT table_schema, privilege_type FROM information_schema.schema_privileges WHERE grantee=%s",
            (grantee,),
        )
    ]
    table = {
        (str(a), str(b), str(c))
        for a, b, c in _query(
            conn,
            "SELECT table_schema, table_name, privilege_type FROM information_schema.table_privileges "
            "WHERE grantee=%s",
            (grantee,),
        )
    }

    def has(priv: str, db: str) -> bool:
        return priv in glob or any(p == priv and _schema_matches(s, db) for s, p in schema)

    needed = ["SELECT", "SHOW VIEW"]
    if options.triggers:
        needed.append("TRIGGER")
    if options.events:
        needed.append("EVENT")
    missing: dict[str, list[str]] = {}
    for db in options.databases:
        lack = [p for p in needed if not has(p, db)]
        if lack:
            missing[f"{_q(db)}.*"] = lack
    if options.routines and not (has("SELECT", "mysql") or ("mysql", "proc", "SELECT") in table):
        missing["mysql.proc"] = ["SELECT"]
    return grantee, missing


def grant_statements(grantee: str, missing: dict[str, list[str]]) -> list[str]:
    """The exact GRANT statements that add ``missing`` privileges to ``grantee``."""
    return [f"GRANT {', '.join(privs)} ON {target} TO {grantee};" for target, privs in missing.items()]


def check_mysql_privileges(options: MySQLOptions | dict[str, Any]) -> list[str]:
    """For ``safehold doctor``: the missing privileges, then the GRANT statements to run (empty when all
    are there). Raises SourceError when the server cannot be reached."""
    opts = options if isinstance(options, MySQLOptions) else MySQLOptions.model_validate(options)
    conn = _conn_from(opts).connect()
    try:
        grantee, missing = missing_privileges(conn, opts)
    finally:
        conn.close()
    if not missing:
        return []
    lines = [f"{grantee} lacks {', '.join(p)} on {t}" for t, p in missing.items()]
    return lines + grant_statements(grantee, missing)


# --- the source -------------------------------------------------------------------------------------


class MySQLSource:
    """Dumps MySQL/MariaDB databases with mariadb-dump (or mysqldump) and restores them."""

    kind: ClassVar[str] = "mysql"
    Options: ClassVar[type[MySQLOptions]] = MySQLOptions

    def __init__(self, name: str, options: MySQLOptions | dict[str, Any]) -> None:
        self.name = name
        self.options = options if isinstance(options, MySQLOptions) else MySQLOptions.model_validate(options)

    # backup
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Dump every configured database; returns server/tool versions and per-database statistics."""
        o = self.options
        dump_tool = proc.find_tool([o.dump_tool] if o.dump_tool else DUMP_TOOLS, package=PACKAGE)
        conn_info = _conn_from(o, owner=f"component {self.name}")
        conn = conn_info.connect()
        try:
            server_version = str(_query(conn, "SELECT VERSION()")[0][0])
            if o.check_privileges:
                grantee, missing = missing_privileges(conn, o)
                if missing:
                    raise SourceError(
                        f"{grantee} lacks privileges the dump needs: "
                        + "; ".join(f"{', '.join(p)} on {t}" for t, p in missing.items()),
                        hint="Run as an administrator: " + " ".join(grant_statements(grantee, missing)),
                    )
            meta: dict[str, Any] = {
                "server_version": server_version,
                "dump_tool": dump_tool.rsplit("/", 1)[-1],
                "dump_tool_version": proc.tool_version(dump_tool),
                "databases": {},
            }
            with conn_info.option_file() as cnf:
                for db in o.databases:
                    meta["databases"][db] = self._backup_db(
                        out, ctx, conn, cnf=cnf, dump_tool=dump_tool, ci=conn_info, db=db
                    )
            return meta
        finally:
            conn.close()

    def _log(self, out: ComponentWriter, ctx: SourceContext) -> Callable[[str], None]:
        def log(msg: str) -> None:
            out.log(msg)
            ctx.log(msg)

        return log

    def _dump_args(self, cnf: str, dump_tool: str) -> list[str]:
        o = self.options
        args = [dump_tool, f"--defaults-file={cnf}", "--single-transaction", "--quick", "--hex-blob"]
        args += ["--default-character-set=utf8mb4", "--no-tablespaces", "--skip-dump-date"]
        args.append("--routines" if o.routines else "--skip-routines")
        args.append("--triggers" if o.triggers else "--skip-triggers")
        args.append("--events" if o.events else "--skip-events")
        return args + list(o.extra_dump_args)

    def _backup_db(
        self,
        out: ComponentWriter,
        ctx: SourceContext,
        conn: Any,
        *,
        cnf: str,
        dump_tool: str,
        ci: _Conn,
        db: str,
    ) -> dict[str, Any]:
        o = self.options
        log = self._log(out, ctx)
        found = _query(
            conn,
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "
            "WHERE schema_name=%s",
            (db,),
        )
        if not found:
            raise SourceError(
                f"database {db} does not exist on {ci.where}", hint="Check 'databases' in the config."
            )
        charset, collation = str(found[0][0]), str(found[0][1])
        tables = _base_tables(conn, db)
        before = _checksums(conn, db, tables) if o.checksums else {}
        tally = dbstats.MySQLDumpTally()
        log(f"dumping {db} ({len(tables)} tables) with {dump_tool.rsplit('/', 1)[-1]}")
        stored, res = proc.drain(
            [*self._dump_args(cnf, dump_tool), "--", db],
            lambda stream: out.add_stream(f"{db}/full_dump.sql", stream),
            secrets=[ci.password],
            end_marker=END_MARKER,
            observer=tally,
            log=log,
        )
        stats = tally.result()
        if tables and not stats:
            raise SourceError(f"dump of {db} contains no table although the database has {len(tables)}")
        lost = [t for t in tables if t not in stats]
        if lost:
            raise SourceError(f"dump of {db} lacks tables {', '.join(lost[:10])}")
        after = _checksums(conn, db, tables) if o.checksums else {}
        for t, st in stats.items():
            if t in before:
                st["checksum"] = after.get(t)
                st["checksum_exact"] = before.get(t) == after.get(t) and after.get(t) is not None
        log(
            f"dumped {db}: {res.size} bytes, {sum(s['rows'] for s in stats.values())} rows "
            f"in {res.seconds:.1f} s"
        )
        entry: dict[str, Any] = {
            "charset": charset,
            "collation": collation,
            "tables": len(stats),
            "rows": sum(s["rows"] for s in stats.values()),
            "dump_bytes": res.size,
            "dump_sha256": stored.sha256,
            "dump_seconds": round(res.seconds, 3),
        }
        if o.schema_only:
            _schema, schema = proc.drain(
                [*self._dump_args(cnf, dump_tool), "--no-data", "--", db],
                lambda stream: out.add_stream(f"{db}/schema_only.sql", stream),
                secrets=[ci.password],
                end_marker=END_MARKER,
                log=log,
            )
            entry["schema_bytes"] = schema.size
        exports = o.exports_for(db)
        if exports:
            entry["text_exports"] = {t: self._export_table(out, ci, db, t) for t in exports}
        notes = [
            "Rows are counted in full_dump.sql itself.",
            "A checksum marked exact was equal right before and right after the dump (CHECKSUM TABLE).",
        ]
        doc = {
            "database": db,
            "server_version": _query(conn, "SELECT VERSION()")[0][0],
            "charset": charset,
            "collation": collation,
            "counted": "rows read from the dump stream (exact for the dump)",
            "tables": stats,
        }
        out.add_bytes(f"{db}/table_statistics.json", json.dumps(doc, indent=2, sort_keys=True).encode())
        text = dbstats.format_statistics(
            f"Database {db} (dumped {time.strftime('%Y-%m-%d %H:%M:%S %Z')})", stats, notes
        )
        out.add_bytes(f"{db}/table_statistics.txt", text.encode())
        entry["table_statistics"] = {
            t: {"rows": s["rows"], "checksum": s.get("checksum")} for t, s in stats.items()
        }
        return entry

    def _export_table(self, out: ComponentWriter, ci: _Conn, db: str, table: str) -> int:
        """Store ``table`` as ``<db>/tables/<table>.tsv`` (header line, \\N for NULL, escaped tabs and
        newlines, binary values as 0x hex); returns the row count."""
        conn = ci.connect(db)
        rows = 0
        try:
            cur = conn.cursor(pymysql.cursors.SSCursor)
            try:
                cur.execute(f"SELECT * FROM {_q(table)}")  # noqa: S608 (quoted identifier)
            except pymysql.MySQLError as exc:
                raise SourceError(f"cannot export {db}.{table}: {exc}") from None

            def blocks() -> Iterator[bytes]:
                nonlocal rows
                yield ("\t".join(_tsv(d[0]) for d in cur.description) + "\n").encode()
                while True:
                    batch = cur.fetchmany(1000)
                    if not batch:
                        return
                    rows += len(batch)
                    yield "".join("\t".join(_tsv(v) for v in r) + "\n" for r in batch).encode()

            out.add_stream(f"{db}/tables/{table}.tsv", stream_of(blocks()))
            cur.close()
        finally:
            conn.close()
        return rows

    # restore
    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        from safehold.sources.mysql_restore import restore_mysql

        return restore_mysql(self, snap, ctx)


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + bytes(value).hex()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def definer_filter(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` of a dump with every ``DEFINER=`user`@`host``` clause removed (so a restore as a
    user without SUPER / SET USER creates routines, triggers, events and views as itself)."""
    pattern = re.compile(rb"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")
    partial = b""
    for chunk in chunks:
        data = partial + chunk
        cut = data.rfind(b"\n") + 1
        partial = data[cut:]
        if cut:
            yield pattern.sub(b"", data[:cut])
    if partial:
        yield pattern.sub(b"", partial)
