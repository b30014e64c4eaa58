"""The ``mysql`` source: backup (streamed dumps, statistics, text exports); restore is in :mod:`.restore`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, cast

import pymysql
from pydantic import BaseModel

from safehold import proc
from safehold.engine.format.tree import Node
from safehold.errors import SourceError
from safehold.sources import dbstats
from safehold.sources.base import Finding, RestorePlan, RestoreReport, SourceContext
from safehold.sources.checks import Checks, app_user_origin, report_backup_user
from safehold.sources.component import ComponentReader, ComponentWriter, stream_of
from safehold.sources.database import SCRATCH_PREFIX, DatabaseRestoreOptions, DatabaseSource
from safehold.sources.export import ExportTree, Part, Place
from safehold.sources.mysql import export as kind_export
from safehold.sources.mysql import restore
from safehold.sources.mysql.client import (
    CLIENT_TOOLS,
    DUMP_TOOLS,
    END_MARKER,
    PACKAGE,
    Conn,
    base_tables,
    checksums,
    conn_from,
    grant_statements,
    privileges,
    query,
    quote,
)
from safehold.sources.mysql.options import MySQLOptions, MySQLRestoreOptions

#: How far a thread reads the dump ahead of chunking and sealing (see proc.ReadAheadStream): without it
#: mariadb-dump stops whenever the 1 MiB pipe is full, so the dump and our work on it took turns.
READ_AHEAD = 16 * 1024 * 1024


def _insufficient(notes: list[str]) -> str | None:
    """Why a dump that notes objects it could not read is incomplete (None when it noted none)."""
    if not notes:
        return None
    return "the dump is incomplete: " + "; ".join(notes[:10]) + (" ..." if len(notes) > 10 else "")


class MySQLSource(DatabaseSource):
    """Dumps MySQL/MariaDB databases with mariadb-dump (or mysqldump) and restores them."""

    kind: ClassVar[str] = "mysql"
    Options: ClassVar[type[BaseModel]] = MySQLOptions
    RestoreOptions: ClassVar[type[BaseModel]] = MySQLRestoreOptions
    restore_rank: ClassVar[int] = 60
    export_folder: ClassVar[str | None] = "database"
    options: MySQLOptions

    @classmethod
    def export_layout(
        cls, tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part
    ) -> None:
        kind_export.export_layout(tree, node, meta, place, part)

    # backup
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Dump every configured database; returns server/tool versions and per-database statistics."""
        o = self.options
        dump_tool = proc.find_tool([o.dump_tool] if o.dump_tool else DUMP_TOOLS, package=PACKAGE)
        conn_info = conn_from(o, owner=f"component {self.name}")
        conn = conn_info.connect()
        try:
            server_version = str(query(conn, "SELECT VERSION()")[0][0])
            if o.check_privileges:
                found = privileges(conn, o)
                if found.missing:
                    raise SourceError(
                        "the dump would be incomplete: " + "; ".join(found.problems()),
                        hint="Run as an administrator: "
                        + " ".join(grant_statements(found.grantee, found.missing)),
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
        ci: Conn,
        db: str,
    ) -> dict[str, Any]:
        o = self.options
        log = self._log(out, ctx)
        found = query(
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
        tables = base_tables(conn, db)
        before = checksums(conn, db, tables) if o.checksums else {}
        tally = dbstats.MySQLDumpTally()
        log(f"dumping {db} ({len(tables)} tables) with {dump_tool.rsplit('/', 1)[-1]}")
        stored, res = proc.drain(
            [*self._dump_args(cnf, dump_tool), "--", db],
            lambda stream: out.add_stream(f"{db}/full_dump.sql", stream),
            secrets=[ci.password],
            end_marker=END_MARKER,
            observer=tally,
            validate=lambda _stream: _insufficient(tally.insufficient),
            log=log,
            read_ahead=READ_AHEAD,
        )
        if "insufficient privileges" in res.stderr:  # a warning of a tool that still exited 0
            raise SourceError(
                f"{dump_tool.rsplit('/', 1)[-1]} lacked privileges for part of {db}: "
                + " / ".join(x for x in res.stderr.splitlines() if "insufficient privileges" in x),
                hint="'safehold doctor' names the privileges to grant; the dump would be incomplete.",
            )
        stats = tally.result()
        for table, data, index in query(
            conn,
            "SELECT table_name, data_length, index_length FROM information_schema.tables "
            "WHERE table_schema=%s AND table_type='BASE TABLE'",
            (db,),
        ):
            if str(table) in stats:
                stats[str(table)]["table_bytes"] = None if data is None else int(data)
                stats[str(table)]["index_bytes"] = None if index is None else int(index)
        if tables and not stats:
            raise SourceError(f"dump of {db} contains no table although the database has {len(tables)}")
        lost = [t for t in tables if t not in stats]
        if lost:
            raise SourceError(f"dump of {db} lacks tables {', '.join(lost[:10])}")
        after = checksums(conn, db, tables) if o.checksums else {}
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
                read_ahead=READ_AHEAD,
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
            "server_version": query(conn, "SELECT VERSION()")[0][0],
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
            t: {
                "rows": s["rows"],
                "checksum": s.get("checksum"),
                "table_bytes": s.get("table_bytes"),
                "index_bytes": s.get("index_bytes"),
            }
            for t, s in stats.items()
        }
        return entry

    def _export_table(self, out: ComponentWriter, ci: Conn, db: str, table: str) -> int:
        """Store ``table`` as ``<db>/tables/<table>.tsv`` (header line, \\N for NULL, escaped tabs and
        newlines, binary values as 0x hex); returns the row count."""
        conn = ci.connect(db)
        rows = 0
        try:
            cur = conn.cursor(pymysql.cursors.SSCursor)
            try:
                cur.execute(f"SELECT * FROM {quote(table)}")  # noqa: S608 (quoted identifier)
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
    def preflight(self, ctx: SourceContext) -> list[Finding]:
        """Tools with versions, connect, databases exist, privileges (the missing ones and the exact
        GRANT statements)."""
        checks = Checks(self.name)
        o = self.options
        checks.tool([o.dump_tool] if o.dump_tool else DUMP_TOOLS, what="dump tool")
        checks.tool([o.client_tool] if o.client_tool else CLIENT_TOOLS, what="client tool (restore)")
        ci = conn_from(o, owner=f"component {self.name}")
        conn = ci.connect()
        try:
            version = str(query(conn, "SELECT VERSION()")[0][0])
            checks.passed("connect", f"connected as {ci.where} (server {version})")
            for db in o.databases:
                if query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (db,)):
                    checks.passed("database", f"database {db} exists")
                else:
                    checks.problem(
                        "database",
                        f"database {db} does not exist or is not visible to {ci.where}",
                        "Check 'databases' in the component, and that the user has SELECT on it.",
                    )
            found = privileges(conn, o)
            self._backup_user(checks, conn, mariadb="mariadb" in version.lower())
        finally:
            conn.close()
        if not found.missing:
            checks.passed("privileges", "the user has every privilege the dump needs")
        else:
            checks.problem(
                "privileges",
                "; ".join(found.problems()),
                "Run as a MySQL administrator (without these the dump fails or silently omits triggers/routines):",
                grant_statements(found.grantee, found.missing),
            )
        return checks.findings

    def _backup_user(self, checks: Checks, conn: Any, *, mariadb: bool) -> None:
        """Report root / an administrator (SUPER, CREATE USER) or the application's own user."""
        current = str(query(conn, "SELECT CURRENT_USER()")[0][0])
        user, _, host = current.rpartition("@")
        glob = {
            str(r[0])
            for r in query(
                conn,
                "SELECT privilege_type FROM information_schema.user_privileges WHERE grantee=%s",
                (f"'{user}'@'{host}'",),
            )
        }
        admin = "root" if user == "root" else None
        if admin is None and glob & {"SUPER", "CREATE USER"}:
            admin = f"an administrator ({', '.join(sorted(glob & {'SUPER', 'CREATE USER'}))} on *.*)"
        backup = f"'safehold_backup'@'{host}'"
        fix = [f"CREATE USER {backup} IDENTIFIED BY 'CHOOSE-A-PASSWORD';"]
        fix += [
            f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {quote(db)}.* TO {backup};"
            for db in self.options.databases
        ]
        fix.append(
            f"GRANT SELECT ON mysql.proc TO {backup};"
            if mariadb
            else f"GRANT SHOW_ROUTINE ON *.* TO {backup};"
        )
        report_backup_user(
            checks,
            who=f"'{user}'@'{host}'",
            admin=admin,
            app=app_user_origin(self.options.password, user),
            fix=fix,
        )

    def dumped_databases(self, snap: ComponentReader) -> list[str]:
        return restore.dumped_databases(snap)

    def count_objects(self, options: DatabaseRestoreOptions, name: str) -> dict[str, int]:
        return restore.count_objects(self.options, cast(MySQLRestoreOptions, options), name)

    def drop_database(self, options: DatabaseRestoreOptions, name: str) -> list[str]:
        return restore.drop_database(
            self.options,
            cast(MySQLRestoreOptions, options),
            name,
            end_sessions=name.startswith(SCRATCH_PREFIX),
        )

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        return restore.plan_restore(self.name, self.options, self.restore_options(ctx.options), snap, ctx)

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        return restore.apply(self.name, self.options, plan, snap, ctx)


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
