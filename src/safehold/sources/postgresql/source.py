"""The ``postgresql`` source (see the package docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import psycopg
from psycopg import sql
from pydantic import BaseModel

from safehold import proc, syntax
from safehold.engine.format.tree import Node
from safehold.errors import RestoreRefused, SourceError
from safehold.sources import dbstats
from safehold.sources.base import Finding, RestorePlan, RestoreReport, SourceContext
from safehold.sources.checks import Checks, app_user_origin, report_backup_user
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.database import DROP_LOCK_WAIT, SCRATCH_PREFIX, DatabaseRestoreOptions, DatabaseSource
from safehold.sources.export import ExportTree, Part, Place
from safehold.sources.postgresql import export as kind_export
from safehold.sources.postgresql.client import (
    PACKAGE,
    PG_OBJECT_COUNTS,
    UNREADABLE_RELATIONS,
    UNUSABLE_SCHEMAS,
    USER_RELATIONS,
    USER_TABLES,
    Conn,
    conn_from,
    dbname_arg,
    exported_snapshot,
    quote_ident,
    table_statistics,
)
from safehold.sources.postgresql.options import PostgreSQLOptions, PostgreSQLRestoreOptions


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
        ci = conn_from(o, owner=f"component {self.name}")

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
        self, out: ComponentWriter, log: Any, ci: Conn, *, pg_dump: str, db: str, meta: dict[str, Any]
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
            with exported_snapshot(conn) as snap_id:
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

    def _globals(self, out: ComponentWriter, log: Any, ci: Conn) -> str:
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
        ci = conn_from(o, owner=f"component {self.name}")
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
            role = quote_ident(ci.user)
            grants = [
                f"GRANT USAGE ON SCHEMA {quote_ident(s)} TO {role};" for s in bad_schemas if (s,) in schemas
            ]
            grants += [
                f"GRANT SELECT ON ALL TABLES IN SCHEMA {quote_ident(s)} TO {role};" for s in bad_schemas
            ]
            grants += [
                f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {quote_ident(s)} TO {role};" for s in bad_schemas
            ]
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
                fix.append(f"GRANT CONNECT ON DATABASE {quote_ident(db)} TO safehold_backup;")
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
        ci = conn_from(self.options, options.connection(), owner=f"component {self.name}")
        with ci.connect(name) as conn:
            return {k: int(conn.execute(q).fetchone()[0]) for k, q in PG_OBJECT_COUNTS.items()}  # type: ignore[index]

    def drop_database(self, options: DatabaseRestoreOptions, name: str) -> list[str]:
        ro = cast(PostgreSQLRestoreOptions, options)
        ci = conn_from(self.options, ro.connection(), owner=f"component {self.name}")
        ended: list[str] = []
        with ci.connect(ro.admin_database) as admin:
            admin.execute(f"SET lock_timeout = '{DROP_LOCK_WAIT}s'")
            admin.execute(f"SET statement_timeout = '{DROP_LOCK_WAIT + 30}s'")
            if name.startswith(SCRATCH_PREFIX):  # a killed drill's pg_restore, or its server session
                rows = admin.execute(
                    "SELECT pid, usename, state, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
                ended = [
                    f"ended session {pid} of {user} ({state})" for pid, user, state, done in rows if done
                ]
            try:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            except psycopg.Error as exc:
                raise SourceError(
                    f"cannot drop database {name} on {ci.where}: {str(exc).strip()}",
                    hint="pg_stat_activity on that server shows the sessions in it; end them "
                    "(pg_terminate_backend), then run 'safehold drill --cleanup'.",
                ) from None
        return ended

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Restore each dump with pg_restore (restore options: :class:`PostgreSQLRestoreOptions`)."""
        ro: PostgreSQLRestoreOptions = self.restore_options(ctx.options)
        plan = RestorePlan(component=self.name, options=ro)
        ci = conn_from(self.options, ro.connection(), owner=f"component {self.name}")
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
        ci = conn_from(self.options, ro.connection(), owner=f"component {self.name}")
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
