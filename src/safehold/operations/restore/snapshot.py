"""Restore of a snapshot (or a path inside it) to a target folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.treewalk import find_node
from safehold.engine.progress import Progress
from safehold.engine.restore.filecontents import RestoreStats
from safehold.engine.restore.restorer import Restorer


@dataclass
class RestoreOptions:
    snapshot: str
    target: str
    subpath: str = ""
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    overwrite: str = "if-changed"
    verify: bool = False


@dataclass
class RestoreResult:
    snapshot: Snapshot
    stats: RestoreStats
    verify_errors: list[str] = field(default_factory=list)


def split_snapshot_arg(arg: str) -> tuple[str, str]:
    """``SNAPSHOT[:SUBPATH]`` -> (snapshot, subpath)."""
    snap, _, sub = arg.partition(":")
    return snap, sub


def restore_snapshot(
    repo: Repository, opts: RestoreOptions, progress: Progress | None = None
) -> RestoreResult:
    repo.load_index()
    snap = repo.find_snapshot(opts.snapshot)
    start = find_node(repo, bytes.fromhex(snap.tree), opts.subpath)
    target = os.path.abspath(os.fsencode(opts.target))
    restorer = Restorer(repo, overwrite=opts.overwrite, progress=progress)
    base = os.fsencode(opts.subpath.strip("/"))
    stats = restorer.restore(start, target, includes=opts.includes, excludes=opts.excludes, base=base)
    result = RestoreResult(snap, stats)
    if opts.verify:
        from safehold.engine.restore.readback import verify_restored

        result.verify_errors = verify_restored(
            repo, start, target, includes=opts.includes, excludes=opts.excludes, base=base
        )
    return result
