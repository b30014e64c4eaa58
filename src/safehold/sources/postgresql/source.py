"""The ``postgresql`` source (see the package docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from safehold import proc, syntax
from safehold.engine.format.tree import Node
from safehold.errors import RestoreRefused, SourceError
from safehold.secrets import SecretRef, resolve_secret
from safehold.sources import dbstats
from safehold.sources.base import (
    ComponentReader,
    ComponentWriter,
    Finding,
    RestorePlan,
    RestoreReport,
    SourceContext,
)
from safehold.sources.checks import Checks, app_user_origin, report_backup_user
from safehold.sources.database import DatabaseRestoreOptions, DatabaseSource
from safehold.sources.export import ExportTree, Part, Place
from safehold.sources.postgresql import export as kind_export

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


class PostgreSQLOptions(BaseModel):
    """Settings of a ``postgresql`` component."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] = Field(min_length=1, description="Databases to dump.", examples=[["app"]])
    host: str = Field(
        default="127.0.0.1",
        description="Server host, or a Unix socket directory (a path).",
        examples=["127.0.0.1", "/var/run/postgresql"],
    )
    port: int = Field(default=5432, description="Server port.", examples=[5432])
    user: str = Field(default="postgres", description="Role to connect as.", examples=["backup"])
    password: SecretRef | None = Field(
        default=None,
        description="Where the password comes from; none for trust/peer/.pgpass authentication.",
        examples=[{"env": "PGPASSWORD_APP"}],
    )
    globals: bool = Field(
        default=True,
        description="Also store roles and tablespaces (pg_dumpall --globals-only).",
        examples=[True],
    )
    checksums: bool = Field(
        default=True,
        description="Compute an md5 per table inside the dump's snapshot (reads and sorts every table).",
        examples=[True],
    )
    compression: int = Field(
        default=0, ge=0, le=9, description="pg_dump -Z level; 0 lets the repository compress.", examples=[0]
    )
    pg_dump: str | None = Field(default=None, description="Path of pg_dump.", examples=["/usr/bin/pg_dump"])
    pg_restore: str | None = Field(
        default=None, description="Path of pg_restore.", examples=["/usr/bin/pg_restore"]
    )
    pg_dumpall: str | None = Field(
        default=None, description="Path of pg_dumpall.", examples=["/usr/bin/pg_dumpall"]
    )
    extra_dump_args: list[str] = Field(
        default_factory=list, description="Further pg_dump arguments.", examples=[["--exclude-table=logs"]]
    )


class _Conn:
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


def _conn_from(
    o: PostgreSQLOptions, overrides: dict[str, Any] | None = None, *, owner: str = "postgresql component"
) -> _Conn:
    """The connection settings (``overrides`` from a restore win), checked before anything connects;
    ``owner`` names the component in errors."""
    ov = overrides or {}
    password = resolve_secret(ov.get("password", o.password), syntax.CREDENTIAL, owner=f"{owner}: password")
    host, user = str(ov.get("host", o.host)), str(ov.get("user", o.user))
    syntax.check(host, syntax.CREDENTIAL, what=f"{owner}: host")
    syntax.check(user, syntax.CREDENTIAL, what=f"{owner}: user")
    return _Conn(host, int(ov.get("port", o.port)), user, password)


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
def _snapshot(conn: psycopg.Connection[Any]) -> Iterator[str | None]:
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


class _Finder:
    """A stream observer that notes whether ``needle`` occurs (across block boundaries)."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.found = False
        self._carry = b""

    def __call__(self, block: bytes) -> None:
        if not self.found:
            self.found = self.needle in self._carry + block[: len(self.needle) * 2] or self.needle in block
            self._carry = block[-len(self.needle) :]


class PostgreSQLRestoreOptions(DatabaseRestoreOptions):
    """What a restore of a ``postgresql`` component may be told."""

    no_owner: bool | None = Field(
        default=None,
        description="Skip ownership and privileges (default: when restoring as another user than the backup's).",
    )
    admin_database: str = Field(default="postgres", description="Database to connect to for CREATE DATABASE.")


class PostgreSQLSource(DatabaseSource):
    """Dumps PostgreSQL databases with pg_dump (custom format) and restores them with pg_restore."""

    kind: ClassVar[str] = "postgresql"
    Options: ClassVar[type[BaseModel]] = PostgreSQLOptions
    RestoreOptions: ClassVar[type[BaseModel]] = PostgreSQLRestoreOptions
    restore_rank: ClassVar[int] = 70
    export_folder: ClassVar[str | None] = "database"
    options: PostgreSQLOptions

    @classmethod
    def export_layout(
        cls, tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part
    ) -> None:
        kind_export.export_layout(tree, node, meta, place, part)

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        o = self.options
        pg_dump = proc.find_tool([o.pg_dump or "pg_dump"], package=PACKAGE)
        ci = _conn_from(o, owner=f"component {self.name}")

        def log(msg: str) -> None:
            out.log(msg)
            ctx.log(msg)

        meta: dict[str, Any] = {"dump_tool": "pg_dump", "dump_tool_version": proc.tool_version(pg_dump)}
        meta["databases"] = {}
        for db in o.databases:
            meta["databases"][db] = self._backup_db(out, log, ci, pg_dump=pg_dump, db=db, meta=meta)
        if o.globals:
            meta["globals"] = self._globals(out, log, ci)
        return meta

    def _backup_db(
        self, out: ComponentWriter, log: Any, ci: _Conn, *, pg_dump: str, db: str, meta: dict[str, Any]
    ) -> dict[str, Any]:
        o = self.options
        conn = ci.connect(db, autocommit=True)
        try:
            meta["server_version"] = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            row = conn.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                "WHERE datname = %s",
                (db,),
            ).fetchone()
            assert row is not None
            encoding, collate, ctype = (str(x) for x in row)
            tables = [f"{s}.{t}" for s, t in conn.execute(USER_TABLES).fetchall()]
            seen = _Finder(b"TABLE DATA")
            with _snapshot(conn) as snap_id:
                argv = [
                    pg_dump,
                    *ci.args(),
                    "--format=custom",
                    f"--compress={o.compression}",
                    *o.extra_dump_args,
                ]
                if snap_id:
                    argv.append(f"--snapshot={snap_id}")
                argv.append(dbname_arg("--dbname", db))
                log(f"dumping {db} ({len(tables)} tables) with pg_dump")
                stored, res = proc.drain(
                    argv,
                    lambda stream: out.add_stream(f"{db}/dump.pgcustom", stream),
                    env=ci.env(),
                    secrets=[ci.password],
                    validate=lambda s: (
                        None if s.head.startswith(b"PGDMP") else "output is not a pg_dump archive"
                    ),
                    observer=seen,
                    log=log,
                )
                stats = table_statistics(conn, o.checksums)
        finally:
            conn.close()
        if tables and not seen.found:
            raise SourceError(
                f"dump of {db} holds no table data although the database has {len(tables)} tables"
            )
        for st in stats.values():
            st["checksum_exact"] = bool(snap_id) and st["checksum"] is not None
        counted = "inside the dump's exported snapshot" if snap_id else "right after the dump"
        doc = {
            "database": db,
            "encoding": encoding,
            "collate": collate,
            "ctype": ctype,
            "exact": bool(snap_id),
            "counted": counted,
            "tables": stats,
        }
        out.add_bytes(f"{db}/table_statistics.json", json.dumps(doc, indent=2, sort_keys=True).encode())
        notes = ["Counted " + counted + "; checksum = md5 of sorted row md5s."]
        title = f"Database {db} (dumped {time.strftime('%Y-%m-%d %H:%M:%S %Z')})"
        out.add_bytes(f"{db}/table_statistics.txt", dbstats.format_statistics(title, stats, notes).encode())
        log(f"dumped {db}: {res.size} bytes in {res.seconds:.1f} s")
        return {
            "tables": len(stats),
            "rows": sum(s["rows"] for s in stats.values()),
            "dump_bytes": res.size,
            "dump_sha256": stored.sha256,
            "dump_seconds": round(res.seconds, 3),
            "statistics_exact": bool(snap_id),
            "table_statistics": {t: {"rows": s["rows"], "checksum": s["checksum"]} for t, s in stats.items()},
        }

    def _globals(self, out: ComponentWriter, log: Any, ci: _Conn) -> str:
        """Store globals.sql; returns "complete", "without role passwords" or "not permitted: ..."."""
        try:
            tool = proc.find_tool([self.options.pg_dumpall or "pg_dumpall"], package=PACKAGE)
        except SourceError as exc:
            log(f"globals not stored: {exc}")
            return f"not stored: {exc}"
        base = [tool, *ci.args(), "--globals-only", dbname_arg("--database", self.options.databases[0])]
        last = ""
        for extra, label in (([], "complete"), (["--no-role-passwords"], "without role passwords")):
            res = proc.run_capture([*base, *extra], env=ci.env(), secrets=[ci.password])
            if res.ok:
                out.add_bytes("globals.sql", res.stdout)
                return label
            last = res.last_error()
        log(f"globals not permitted: {last}")
        return f"not permitted: {last}"

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        o = self.options
        dump = checks.tool([o.pg_dump] if o.pg_dump else ["pg_dump"], what="pg_dump")
        checks.tool([o.pg_restore] if o.pg_restore else ["pg_restore"], what="pg_restore (restore)")
        ci = _conn_from(o, owner=f"component {self.name}")
        server_major = 0
        for i, db in enumerate(o.databases):
            conn = ci.connect(db)
            try:
                server_major = int(conn.info.server_version) // 10000
                if i == 0:
                    self._backup_user(checks, conn, ci.user, server_major)
                unreadable = conn.execute(UNREADABLE_RELATIONS).fetchall()
                schemas = conn.execute(UNUSABLE_SCHEMAS).fetchall()
            finally:
                conn.close()
            if not unreadable and not schemas:
                checks.passed("read", f"connected to {db} as {ci.where}; every table is readable")
                continue
            bad_schemas = sorted({str(s) for (s,) in schemas} | {str(s) for s, _t in unreadable})
            role = _ident(ci.user)
            grants = [f"GRANT USAGE ON SCHEMA {_ident(s)} TO {role};" for s in bad_schemas if (s,) in schemas]
            grants += [f"GRANT SELECT ON ALL TABLES IN SCHEMA {_ident(s)} TO {role};" for s in bad_schemas]
            grants += [f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {_ident(s)} TO {role};" for s in bad_schemas]
            shown = ", ".join(f"{s}.{t}" for s, t in unreadable[:10]) + (
                " ..." if len(unreadable) > 10 else ""
            )
            checks.problem(
                "read",
                f"{ci.where} cannot read {len(unreadable)} relation(s) in {db}: {shown or '(schemas)'}",
                f"Run in database {db} as its owner or a superuser:",
                grants,
            )
        if dump and server_major:
            m = re.search(r"(\d+)(?:\.\d+)?", proc.tool_version(dump))
            if m and int(m.group(1)) < server_major:
                checks.problem(
                    "version",
                    f"pg_dump {m.group(1)} is older than the server ({server_major}); it refuses to dump",
                    f"Install postgresql-client-{server_major} or set pg_dump to its path.",
                )
        return checks.findings

    def _backup_user(self, checks: Checks, conn: Any, user: str, major: int) -> None:
        """Report a superuser or the application's own role as the role the backup connects as."""
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        admin = "a superuser" if row and row[0] else None
        fix = ["CREATE ROLE safehold_backup LOGIN PASSWORD 'CHOOSE-A-PASSWORD';"]
        if major >= 14:
            fix.append("GRANT pg_read_all_data TO safehold_backup;")
        else:
            for db in self.options.databases:
                fix.append(f"GRANT CONNECT ON DATABASE {_ident(db)} TO safehold_backup;")
            fix.append(
                "-- in each database: GRANT USAGE ON SCHEMA public TO safehold_backup; GRANT SELECT ON ALL "
                "TABLES IN SCHEMA public TO safehold_backup; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public "
                "TO safehold_backup;"
            )
        report_backup_user(
            checks, who=user, admin=admin, app=app_user_origin(self.options.password, user), fix=fix
        )

    # restore
    def dumped_databases(self, snap: ComponentReader) -> list[str]:
        return [d for d in snap.listdir() if snap.exists(f"{d}/dump.pgcustom")]

    def count_objects(self, options: DatabaseRestoreOptions, name: str) -> dict[str, int]:
        ci = _conn_from(self.options, options.connection(), owner=f"component {self.name}")
        with ci.connect(name) as conn:
            return {k: int(conn.execute(q).fetchone()[0]) for k, q in PG_OBJECT_COUNTS.items()}  # type: ignore[index]

    def drop_database(self, options: DatabaseRestoreOptions, name: str) -> None:
        ro = cast(PostgreSQLRestoreOptions, options)
        ci = _conn_from(self.options, ro.connection(), owner=f"component {self.name}")
        with ci.connect(ro.admin_database) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Restore each dump with pg_restore (restore options: :class:`PostgreSQLRestoreOptions`)."""
        ro: PostgreSQLRestoreOptions = self.restore_options(ctx.options)
        plan = RestorePlan(component=self.name, options=ro)
        ci = _conn_from(self.options, ro.connection(), owner=f"component {self.name}")
        dumped = self.dumped_databases(snap)
        wanted = ro.databases or dumped
        if any(d not in dumped for d in wanted):
            raise SourceError(f"snapshot holds dumps of {', '.join(dumped) or 'nothing'} only")
        mapping = {d: str(ro.database_map.get(d, d)) for d in wanted}
        if ro.database:
            if len(wanted) != 1:
                raise SourceError(
                    f"--db-name renames one database, but {len(wanted)} are being restored "
                    f"({', '.join(wanted)})",
                    hint=dbstats.rename_hint(self.name, wanted),
                )
            mapping[wanted[0]] = ro.database
        for name in {*mapping, *mapping.values()}:  # stored names and options: a NUL would cut the name
            syntax.check(name, syntax.ARGUMENT, what=f"component {self.name}: database name {name!r}")
        admin = ci.connect(ro.admin_database)
        try:
            for src, target in mapping.items():
                stats = json.loads(snap.read_bytes(f"{src}/table_statistics.json"))
                exists = bool(
                    admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
                )
                nonempty = False
                if exists:
                    with ci.connect(target) as tc:
                        nonempty = bool(tc.execute(USER_RELATIONS).fetchone()[0])  # type: ignore[index]
                if nonempty and not ctx.force:
                    raise RestoreRefused(
                        f"database {target} on {ci.where} is not empty",
                        hint="Restore into another database name, or pass --force to replace its objects.",
                    )
                if not exists:
                    plan.actions.append(f"create database {target} on {ci.where}")
                how = " replacing existing objects (--clean)" if nonempty else ""
                plan.actions.append(f"pg_restore {src}/dump.pgcustom into {target}{how}")
                plan.steps.append((src, target, stats, exists, nonempty))
        finally:
            admin.close()
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        ro: PostgreSQLRestoreOptions = plan.options
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings))
        ci = _conn_from(self.options, ro.connection(), owner=f"component {self.name}")
        pg_restore = proc.find_tool([self.options.pg_restore or "pg_restore"], package=PACKAGE)
        no_owner = ro.no_owner if ro.no_owner is not None else ci.user != self.options.user
        admin = ci.connect(ro.admin_database)
        try:
            for src, target, stats, exists, nonempty in plan.steps:
                if not exists:
                    admin.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
                            sql.Identifier(target), sql.Literal(stats.get("encoding") or "UTF8")
                        )
                    )
                argv = [pg_restore, *ci.args(), dbname_arg("--dbname", target), "--exit-on-error"]
                if no_owner:
                    argv += ["--no-owner", "--no-privileges"]
                if nonempty:
                    argv += ["--clean", "--if-exists"]

                def progress(n: int, t: str = target) -> None:
                    ctx.log(f"restoring {t}: {n / (1 << 20):.0f} MiB loaded")

                res = proc.feed(
                    argv,
                    snap.open_stream(f"{src}/dump.pgcustom"),
                    env=ci.env(),
                    secrets=[ci.password],
                    progress=progress,
                    log=ctx.log,
                )
                detail: dict[str, Any] = {"bytes": res.size, "seconds": round(res.seconds, 3), "problems": []}
                if ro.verify:
                    with ci.connect(target) as tc:
                        want = any(t.get("checksum_exact") for t in stats["tables"].values())
                        now = table_statistics(tc, want)
                    detail["problems"] = dbstats.compare(
                        stats["tables"],
                        {t: s["rows"] for t, s in now.items()},
                        {t: s["checksum"] for t, s in now.items()},
                    )
                    detail["rows"] = {t: s["rows"] for t, s in now.items()}
                    detail["verified_tables"] = len(stats["tables"])
                report.details[target] = detail
        finally:
            admin.close()
        problems = [p for d in report.details.values() for p in d["problems"]]
        if problems:
            report.warnings.extend(problems)
            raise SourceError("restore verification failed: " + "; ".join(problems[:10]))
        return report


def _ident(name: str) -> str:
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
