"""Restore of the ``mysql`` source: load ``<db>/full_dump.sql`` into a server, then prove it.

Restore options (:class:`~safehold.sources.mysql.options.MySQLRestoreOptions`, all optional):

* ``databases`` — list of dumped database names to restore (default: all in the snapshot);
* ``database`` — target name when one database is restored; ``database_map`` — ``{dumped: target}``;
* ``host``, ``port``, ``socket``, ``user``, ``password`` (a SecretRef or its dict) — another server/user;
* ``strip_definers`` — drop ``DEFINER=`` clauses (restore as a user without SUPER / SET USER);
* ``verify`` — compare row counts (and exact checksums) with ``table_statistics.json`` (default true);
* ``parallel`` — connections that load at once (default 2, 1 on a one-core machine): the dump is cut at
  its tables while it loads (:mod:`.split`, which falls back to one client for a dump it cannot cut
  exactly) and loaded by :mod:`.parallel`, small tables side by side and the rows of a big one over
  every connection; 1 loads it through one ``mariadb`` client.

Rules: a missing database is created with the dumped character set and collation; an existing database
that holds tables is refused unless ``ctx.force`` (then the plan drops it and creates it again);
:func:`plan_restore` changes nothing, :func:`apply` executes exactly its plan. Progress goes to ``ctx.log`` every 64 MiB. A verification mismatch raises
SourceError after the load (the report is in the message).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pymysql

from safehold import proc, syntax
from safehold.errors import RestoreRefused, SourceError
from safehold.sources import dbstats
from safehold.sources.base import RestorePlan, RestoreReport, SourceContext
from safehold.sources.component import ComponentReader
from safehold.sources.database import DROP_LOCK_WAIT
from safehold.sources.mysql import parallel, split
from safehold.sources.mysql.client import (
    CLIENT_TOOLS,
    PACKAGE,
    base_tables,
    checksums,
    conn_from,
    query,
    quote,
    row_counts,
)
from safehold.sources.mysql.options import MySQLOptions, MySQLRestoreOptions
from safehold.sources.mysql.sandbox import is_mariadb_client, without_sandbox_line


def dumped_databases(snap: ComponentReader) -> list[str]:
    """The databases whose dumps ``snap`` holds."""
    return [d for d in snap.listdir() if snap.exists(f"{d}/full_dump.sql")]


def _targets(name: str, snap: ComponentReader, ro: MySQLRestoreOptions) -> dict[str, str]:
    dumped = dumped_databases(snap)
    wanted = ro.databases or dumped
    unknown = [d for d in wanted if d not in dumped]
    if unknown:
        raise SourceError(
            f"snapshot holds no dump of {', '.join(unknown)}",
            hint=f"It holds: {', '.join(dumped) or 'none'}.",
        )
    mapping = {d: d for d in wanted}
    mapping.update({k: v for k, v in ro.database_map.items() if k in mapping})
    if ro.database:
        if len(wanted) != 1:
            raise SourceError(
                f"--db-name renames one database, but {len(wanted)} are being restored ({', '.join(wanted)})",
                hint=dbstats.rename_hint(name, wanted),
            )
        mapping[wanted[0]] = ro.database
    return mapping


def plan_restore(
    component: str, options: MySQLOptions, ro: MySQLRestoreOptions, snap: ComponentReader, ctx: SourceContext
) -> RestorePlan:
    """What restoring the dumps of ``snap`` with ``ro`` does (see the module docstring); changes nothing."""
    plan = RestorePlan(component=component, options=ro)
    mapping = _targets(component, snap, ro)
    for name in {*mapping, *mapping.values()}:  # stored names and options, on their way into argv
        syntax.check(name, syntax.ARGUMENT, what=f"component {component}: database name {name!r}")
    ci = conn_from(options, ro.connection(), owner=f"component {component}")
    conn = ci.connect()
    try:
        for dumped, target in mapping.items():
            stats = json.loads(snap.read_bytes(f"{dumped}/table_statistics.json"))
            exists = bool(
                query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (target,))
            )
            nonempty = exists and bool(base_tables(conn, target))
            if nonempty and not ctx.force:
                raise RestoreRefused(
                    f"database {target} on {ci.where} is not empty",
                    hint="Restore into another database name, or pass --force to drop and replace it.",
                )
            if nonempty:
                plan.actions.append(f"drop database {target} on {ci.where} and create it again")
            elif not exists:
                plan.actions.append(f"create database {target} on {ci.where}")
            plan.actions.append(
                f"load {dumped}/full_dump.sql into {target} ({len(stats['tables'])} tables, "
                f"{sum(t['rows'] for t in stats['tables'].values())} rows)"
            )
            plan.steps.append((dumped, target, stats, nonempty))
    finally:
        conn.close()
    return plan


def apply(
    component: str, options: MySQLOptions, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext
) -> RestoreReport:
    """Execute ``plan``: for each database, drop it when the plan says so, create it, load the dump, verify."""
    ro: MySQLRestoreOptions = plan.options
    report = RestoreReport(component, list(plan.actions), list(plan.warnings))
    ci = conn_from(options, ro.connection(), owner=f"component {component}")
    client = proc.find_tool([options.client_tool] if options.client_tool else CLIENT_TOOLS, package=PACKAGE)
    conn = ci.connect()
    try:
        with ci.option_file() as cnf:
            for dumped, target, stats, drop in plan.steps:
                report.details[target] = _restore_one(
                    ctx, ro, conn=conn, ci=ci, cnf=cnf, client=client, snap=snap,
                    dumped=dumped, target=target, stats=stats, drop=drop,
                )  # fmt: skip
    finally:
        conn.close()
    problems = [p for d in report.details.values() for p in d.get("problems", [])]
    if problems:
        report.warnings.extend(problems)
        raise SourceError("restore verification failed: " + "; ".join(problems[:10]))
    return report


#: What a drill counts in a scratch database besides tables (what a dump must bring back too).
OBJECT_COUNTS = {
    "routines": "SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %s",
    "triggers": "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s",
    "views": "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = %s",
    "events": "SELECT COUNT(*) FROM information_schema.events WHERE event_schema = %s",
}


def count_objects(options: MySQLOptions, ro: MySQLRestoreOptions, name: str) -> dict[str, int]:
    """Routines, triggers, views and events of database ``name`` (drills)."""
    conn = conn_from(options, ro.connection()).connect()
    try:
        return {k: int(query(conn, q, (name,))[0][0]) for k, q in OBJECT_COUNTS.items()}
    finally:
        conn.close()


def drop_database(
    options: MySQLOptions, ro: MySQLRestoreOptions, name: str, *, end_sessions: bool = False
) -> list[str]:
    """DROP DATABASE IF EXISTS ``name`` on the server ``ro`` connects to, never waiting without end.

    With ``end_sessions`` (a drill's scratch database) the sessions working in it are ended first
    (``KILL CONNECTION``): a killed drill's restore client, or its server-side session that still runs a
    statement the client will never read, would otherwise hold locks that DROP waits for. The DROP
    waits at most :data:`DROP_LOCK_WAIT` s for a lock (``lock_wait_timeout``), then raises SourceError
    naming what holds it. Returns what it ended ("ended session 12 of user@host (Query, 40 s)")."""
    ci = conn_from(options, ro.connection())
    conn = ci.connect(read_timeout=DROP_LOCK_WAIT + 30)
    ended: list[str] = []
    try:
        query(conn, f"SET SESSION lock_wait_timeout = {DROP_LOCK_WAIT}")
        if end_sessions:
            rows = query(
                conn,
                "SELECT id, user, host, command, time FROM information_schema.processlist "
                "WHERE db = %s AND id <> CONNECTION_ID()",
                (name,),
            )
            for sid, user, host, command, seconds in rows:
                try:
                    query(conn, f"KILL CONNECTION {int(sid)}")
                except pymysql.MySQLError as exc:
                    if exc.args and exc.args[0] == 1094:  # unknown thread id: it ended by itself
                        continue
                    raise SourceError(
                        f"cannot end session {sid} of {user}@{host} in scratch database {name}: {exc}",
                        hint=f"End it on the server (KILL {sid}) or give the drill's scratch user the "
                        "right to (CONNECTION ADMIN or SUPER), then run 'safehold drill --cleanup'.",
                    ) from None
                ended.append(f"ended session {sid} of {user}@{host} ({command}, {seconds} s)")
        try:
            query(conn, f"DROP DATABASE IF EXISTS {quote(name)}")
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] == 1205:  # lock wait timeout exceeded
                raise SourceError(
                    f"cannot drop database {name} on {ci.where}: another session held a lock on it for "
                    f"{DROP_LOCK_WAIT} s",
                    hint="SHOW PROCESSLIST on that server shows which; end it (KILL ID), then run "
                    "'safehold drill --cleanup'.",
                ) from None
            raise SourceError(f"cannot drop database {name} on {ci.where}: {exc}") from None
    finally:
        conn.close()
    return ended


def _restore_one(
    ctx: SourceContext,
    ro: MySQLRestoreOptions,
    *,
    conn: Any,
    ci: Any,
    cnf: str,
    client: str,
    snap: ComponentReader,
    dumped: str,
    target: str,
    stats: dict[str, Any],
    drop: bool,
) -> dict[str, Any]:
    if drop:
        query(conn, f"DROP DATABASE {quote(target)}")
    charset = stats.get("charset") or "utf8mb4"
    collation = stats.get("collation") or "utf8mb4_general_ci"
    if not (re.fullmatch(r"\w+", charset) and re.fullmatch(r"\w+", collation)):
        raise SourceError(f"bad character set {charset!r} / collation {collation!r} in table_statistics.json")
    query(conn, f"CREATE DATABASE IF NOT EXISTS {quote(target)} CHARACTER SET {charset} COLLATE {collation}")
    mariadb_client = is_mariadb_client(proc.tool_version(client))

    dump = f"{dumped}/full_dump.sql"

    def source() -> Iterator[bytes]:
        chunks: Iterator[bytes] = iter(snap.open_stream(dump))
        if not mariadb_client:  # MySQL's client stops at MariaDB's first line
            chunks = without_sandbox_line(chunks)
        if ro.strip_definers:
            chunks = definer_filter(chunks)
        return chunks

    def progress(n: int) -> None:
        ctx.log(f"restoring {target}: {n / (1 << 20):.0f} MiB loaded")

    argv = [client, f"--defaults-file={cnf}", "--default-character-set=utf8mb4", "--", target]
    clients = ro.parallel if ro.parallel is not None else min(2, os.cpu_count() or 1)
    layout, used, shared = None, 1, 0
    if clients > 1:
        # each connection's reader loads only the chunks it needs, where no filter needs every byte
        parts = snap.stream_parts(dump) if mariadb_client and not ro.strip_definers else None
        try:
            res, layout, used, shared = parallel.load(
                source,
                lambda: ci.connect(target),
                argv,
                parts=parts,
                loaders=clients,
                secrets=[ci.password],
                progress=progress,
                log=ctx.log,
            )
        except split.Unsplittable as exc:
            restart = len(exc.args) > 1 and exc.args[1]
            again = (
                " (the database is emptied first: the tables loaded so far are dropped)" if restart else ""
            )
            ctx.log(f"restoring {target} through one client: {exc.args[0]}{again}")
            if restart:
                query(conn, f"DROP DATABASE {quote(target)}")
                query(conn, f"CREATE DATABASE {quote(target)} CHARACTER SET {charset} COLLATE {collation}")
    if layout is None:
        res = proc.feed(argv, source(), secrets=[ci.password], progress=progress, log=ctx.log)
    else:
        n_tables = sum(not s.view for s in layout.sections)
        spread = f" (the rows of {shared} of them over more than one)" if shared else ""
        ctx.log(f"restored {target}: {n_tables} tables through {used} connections at once{spread}")
    detail: dict[str, Any] = {"bytes": res.size, "seconds": round(res.seconds, 3), "problems": []}
    detail["clients"] = used if layout is not None else 1
    if ro.verify:
        tables = base_tables(conn, target)
        rows = row_counts(conn, target, tables)
        want_sums = any(t.get("checksum_exact") for t in stats["tables"].values())
        sums = checksums(conn, target, tables) if want_sums else None
        detail["problems"] = dbstats.compare(stats["tables"], rows, sums)
        detail["rows"] = rows
        detail["verified_tables"] = len(stats["tables"])
    return detail


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
