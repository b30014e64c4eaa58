"""Restore of the ``redis`` source: :func:`plan_restore` changes nothing, :func:`apply` executes exactly
its plan (the modes ``live`` and ``rdb``: see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import redis as redis_lib

from safehold import proc
from safehold.engine.fs.safedir import folder_of, folder_warnings
from safehold.errors import RestoreRefused, SourceError
from safehold.fsutil import AtomicFile
from safehold.sources.base import RestorePlan, RestoreReport, SourceContext
from safehold.sources.component import ComponentReader
from safehold.sources.redis.client import BATCH, Clients, Conn
from safehold.sources.redis.options import RedisOptions, RedisRestoreOptions


def plan_restore(
    name: str, options: RedisOptions, ro: RedisRestoreOptions, snap: ComponentReader, ctx: SourceContext
) -> RestorePlan:
    """What restoring component ``name`` with the restore options ``ro`` would do (reads the snapshot and
    the server, changes nothing)."""
    if ro.mode == "rdb":
        return _plan_rdb(name, options, ro, ctx)
    return _plan_live(name, options, ro, snap, ctx)


def apply(
    name: str, options: RedisOptions, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext
) -> RestoreReport:
    """Execute ``plan`` (made by :func:`plan_restore`) and nothing else."""
    ro: RedisRestoreOptions = plan.options
    report = RestoreReport(name, list(plan.actions), list(plan.warnings))
    if ro.mode == "rdb":
        ((target,),) = plan.steps
        # the folder (the server's, which its user can change) reached without following its symlinks
        with (
            folder_of(target) as dfd,
            AtomicFile(target.name, mode=0o640, dir_fd=dfd) as f,
        ):
            for chunk in snap.open_stream("dump.rdb"):
                f.write(chunk)
            f.commit()
        report.details = {"path": str(target), "bytes": f.size}
        return report
    ((clashes,),) = plan.steps
    ci = Conn(options, _overrides(ro), owner=f"component {name}")
    restored = 0
    with Clients(ci, ro.db) as client:
        try:
            for batch in _batches(_records(name, snap)):
                for db in {r["db"] for r in batch}:
                    pipe = client(db).pipeline(transaction=False)
                    for r in batch:
                        if r["db"] != db:
                            continue
                        ttl = max(int(r["pttl"]), 0)
                        pipe.restore(r["key"], ttl, r["value"], replace=ctx.force)
                        restored += 1
                    pipe.execute()
        except redis_lib.RedisError as exc:
            raise SourceError(
                proc.redact(f"restore into Redis at {ci.where} failed: {exc}", [ci.password])
            ) from None
    report.details = {"keys": restored, "replaced": clashes if ctx.force else 0}
    ctx.log(f"restored {restored} keys into {ci.where}")
    return report


def _records(name: str, snap: ComponentReader) -> Iterator[dict[str, Any]]:
    if not snap.exists("keys.dump"):
        raise SourceError(
            "this snapshot has no keys.dump (keys_export was off)",
            hint=f"Restore the RDB file instead: --set {name}.mode=rdb "
            f"--set {name}.rdb_path=/var/lib/redis/dump.rdb.",
        )
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
    first = True
    for chunk in snap.open_stream("keys.dump"):
        unpacker.feed(chunk)
        for rec in unpacker:
            if first:
                if rec.get("format") != "safehold-redis-keys":
                    raise SourceError("keys.dump is not a safehold key export")
                first = False
                continue
            yield rec


def _plan_live(
    name: str, options: RedisOptions, ro: RedisRestoreOptions, snap: ComponentReader, ctx: SourceContext
) -> RestorePlan:
    ci = Conn(options, _overrides(ro), owner=f"component {name}")
    plan = RestorePlan(component=name, options=ro)
    with Clients(ci, ro.db) as client:
        try:
            total, clashes = 0, 0
            for batch in _batches(_records(name, snap)):
                total += len(batch)
                for db in {r["db"] for r in batch}:
                    keys = [r["key"] for r in batch if r["db"] == db]
                    clashes += sum(bool(x) for x in _pipe(client(db), "exists", keys))
        except redis_lib.RedisError as exc:
            raise SourceError(proc.redact(f"Redis at {ci.where}: {exc}", [ci.password])) from None
    if clashes and not ctx.force:
        raise RestoreRefused(
            f"{clashes} of {total} keys already exist on {ci.where}",
            hint="Restore into an empty server/database, or pass --force to replace them.",
        )
    how = f", replacing {clashes} existing" if clashes else ""
    plan.actions.append(f"restore {total} keys into {ci.where}{how}")
    plan.steps.append((clashes,))
    return plan


def _plan_rdb(name: str, options: RedisOptions, ro: RedisRestoreOptions, ctx: SourceContext) -> RestorePlan:
    if not ro.rdb_path:
        raise SourceError(
            "mode 'rdb' needs rdb_path",
            hint=f"Pass --set {name}.rdb_path=PATH, the server's dir/dbfilename "
            "(e.g. /var/lib/redis/dump.rdb).",
        )
    target = Path(ro.rdb_path)
    plan = RestorePlan(component=name, options=ro)
    running = _server_using(Conn(options, _overrides(ro), owner=f"component {name}"), target)
    if running:
        raise SourceError(
            f"a Redis server at {running} is running with {target}",
            hint="Stop it first (it would overwrite the file when it shuts down), then restore, then start it.",
        )
    if target.exists() and not ctx.force:
        raise RestoreRefused(f"{target} exists", hint="Pass --force to replace it (with the server stopped).")
    plan.actions.append(f"{'replace' if target.exists() else 'write'} {target}")
    plan.warnings += folder_warnings(target)
    plan.warnings.append("start the Redis server with this file as its dir/dbfilename afterwards")
    plan.steps.append((target,))
    return plan


def _overrides(ro: RedisRestoreOptions) -> dict[str, Any]:
    """The connection settings a restore was told (only those given)."""
    return ro.model_dump(exclude_none=True, include={"host", "port", "socket", "username", "password"})


def _server_using(ci: Conn, target: Path) -> str | None:
    """The address of a reachable server whose RDB file is ``target``, else None (best effort)."""
    try:
        c = ci.client()
        try:
            d = c.config_get("dir").get("dir")
            f = c.config_get("dbfilename").get("dbfilename")
        finally:
            c.close()
    except redis_lib.RedisError:
        return None
    if d and f and Path(str(d)) / str(f) == target:
        return ci.where
    return None


def _batches(records: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pipe(c: redis_lib.Redis, command: str, keys: list[bytes]) -> list[Any]:
    pipe = c.pipeline(transaction=False)
    for k in keys:
        getattr(pipe, command)(k)
    return list(pipe.execute())
