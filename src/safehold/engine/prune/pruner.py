"""Prune: delete the packs no snapshot needs, repack the mostly-unused ones, rewrite the index.

Plan, then execute (:func:`plan_prune`, :func:`execute_prune`); the caller holds an *exclusive* lock for
both (see :mod:`safehold.operations.maintenance.prune`).

Planning marks the entries the snapshots use (:mod:`safehold.engine.prune.usage`) and counts, per pack, the
bytes of used and unused blobs with ``numpy.bincount`` over the index columns. A blob stored in several
packs is kept once: in a pack that exists, the first such. Then:

* a pack with no used blob is deleted;
* packs whose unused share is largest are repacked (their used blobs are read, verified and written into
  new packs) until the unused bytes left are at most ``max_unused`` of the used bytes, within
  ``max_repack`` bytes of used blobs copied;
* a pack that no index names (left by a backup that died or was stopped before its index file) is
  deleted only when the storage says it was written more than ``grace`` ago.

Nothing is deleted when anything the snapshots reference is missing or unreadable: prune would turn an
index fault into data loss. The plan names the problems; ``check`` and ``repair`` take over.

Why this is safe against a crash (SIGKILL at any point) — the order of the writes:

1. new packs (repacked blobs) are saved, and index files naming them (by the writer, every 8 packs);
2. new index files naming every entry of the packs that stay;
3. the index files that existed when prune started are removed;
4. the packs to delete are removed.

A pack is removed only after no index file names it, and an index file only after a replacement names
everything of it that stays. Killed after 1 or 2, the repository holds every blob twice in the index
(duplicates are harmless, the next prune keeps one); killed during 3, the old files left name packs that
still exist; killed during 4, the packs left are in no index and are removed by a later prune once past
the grace period. ``check`` passes at every point, and nothing a snapshot references is ever unreachable.

Why this is safe with other writers — the locks (:mod:`safehold.engine.format.lock`):

* Prune holds an exclusive lock: no backup can take its shared lock meanwhile, so no snapshot appears
  that prune did not see. Backups wait (``--lock-wait``) or fail; they never run beside a prune.
* A writer whose lease ran out (a host paused or cut off for longer than the lease) may still be running.
  Prune removes such stale locks when it starts, and a writer reads its lock file back before every
  index file and before its snapshot (:meth:`Lock.confirm`): finding it gone, it stops without committing.
  A writer that cannot refresh its lease stops by itself once the lease ran out, before prune (which
  waits the lease plus a grace) can count its lock as stale.
* Packs that a stopped or still-running writer uploaded are in no index prune loaded, so they are never
  counted as "no used blob"; as unindexed packs they are deleted only past the grace period (one hour by
  default, far longer than a writer's lock check interval): a writer that got past its last check keeps its
  fresh packs until it, too, notices that its lock is gone.

What remains is the usual assumption of lease-based locks: hosts' clocks agree within the lock grace
(30 s) and a writer never stays paused between reading its lock back and saving its snapshot for longer
than the lease. The lock's clock counts time a machine spends suspended (CLOCK_BOOTTIME).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from safehold.backends.base import FileInfo, FileType, Handle
from safehold.engine.format.indexfile import IndexColumns, encode_index
from safehold.engine.format.pack import PackedBlob
from safehold.engine.format.repository import Repository
from safehold.engine.memtune import release_memory
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.prune.repack import repack, rows_by_pack
from safehold.engine.prune.usage import Usage, duplicate_groups, mark_used
from safehold.engine.util import human_bytes
from safehold.errors import IntegrityError, NotFoundError

#: Unindexed packs younger than this are left alone (they may belong to a backup still running).
DEFAULT_GRACE = 3600.0
DEFAULT_MAX_UNUSED = 0.05
#: Entries per index file written by prune.
INDEX_ENTRIES = 100_000


@dataclass
class PrunePlan:
    """What prune will do, with the figures it reports."""

    usage: Usage
    #: per index entry: this copy is kept (one per used blob), and it is a distinct entry (not the same
    #: blob listed for the same pack twice)
    keeper: npt.NDArray[np.bool_]
    distinct: npt.NDArray[np.bool_]
    stored: dict[str, FileInfo]
    delete: list[str] = field(default_factory=list)  # indexed packs with no used blob
    repack: list[str] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)  # old enough to delete
    young: list[str] = field(default_factory=list)  # unindexed, within the grace period: left
    dropped: list[str] = field(default_factory=list)  # named by the index, missing, no used blob
    problems: list[str] = field(default_factory=list)
    blobs_total: int = 0
    blobs_used: int = 0
    blobs_removed: int = 0
    bytes_used: int = 0
    bytes_unused: int = 0
    bytes_removed: int = 0
    bytes_repack: int = 0
    size_before: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def nothing_to_do(self) -> bool:
        return not (self.delete or self.repack or self.unindexed or self.dropped)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "blobs": self.blobs_total,
            "blobs_used": self.blobs_used,
            "blobs_removed": self.blobs_removed,
            "packs": len(self.stored),
            "packs_delete": len(self.delete),
            "packs_repack": len(self.repack),
            "packs_unindexed_delete": len(self.unindexed),
            "packs_unindexed_young": len(self.young),
            "packs_missing_dropped": len(self.dropped),
            "bytes_used": self.bytes_used,
            "bytes_unused": self.bytes_unused,
            "bytes_removed": self.bytes_removed,
            "bytes_repack": self.bytes_repack,
            "size_before": self.size_before,
        }


def _problem_list(usage: Usage) -> list[str]:
    out = list(usage.problems)
    if usage.problem_count > len(out):
        out.append(f"... and {usage.problem_count - len(out)} more")
    return out


def plan_prune(
    repo: Repository,
    roots: list[tuple[bytes, str]],
    *,
    max_unused: float = DEFAULT_MAX_UNUSED,
    max_repack: int | None = None,
    grace: float = DEFAULT_GRACE,
    now: float | None = None,
    progress: Progress | None = None,
    workers: int = 2,
) -> PrunePlan:
    """Plan a prune keeping everything the trees ``roots`` reference (see the module docstring)."""
    now = time.time() if now is None else now
    stored = {fi.name: fi for fi in repo.backend.list(FileType.DATA)}
    usage = mark_used(repo, roots, progress=progress, workers=workers)
    cols = usage.cols
    n = cols.rows
    npacks = len(cols.packs)
    groups = duplicate_groups(cols)
    present_pack = np.array([p.hex() in stored for p in cols.packs], dtype=bool)
    present = present_pack[cols.pack] if n else np.zeros(0, dtype=bool)
    # one entry per (blob, pack): the same pack listed in two index files counts once
    order = np.lexsort((cols.offset, cols.pack, groups))
    distinct = np.ones(n, dtype=bool)
    if n > 1:
        dup = (groups[order][1:] == groups[order][:-1]) & (cols.pack[order][1:] == cols.pack[order][:-1])
        distinct[order[1:][dup]] = False
    # one kept copy per used blob: an entry in a pack that exists, else any (then it is a problem)
    keeper = np.zeros(n, dtype=bool)
    if n:
        pref = np.lexsort((~distinct, ~present, groups))  # per group, present packs first, distinct rows
        first = np.ones(n, dtype=bool)
        first[1:] = groups[pref][1:] != groups[pref][:-1]
        chosen = pref[first]
        keeper[chosen[usage.used[chosen]]] = True
    plan = PrunePlan(usage, keeper, distinct, stored, problems=_problem_list(usage))
    lengths = cols.length.astype(np.int64)
    keep_bytes = np.bincount(cols.pack, weights=lengths * keeper, minlength=npacks)
    keep_count = np.bincount(cols.pack, weights=keeper.astype(np.int64), minlength=npacks)
    unused_mask = distinct & ~keeper
    unused_bytes = np.bincount(cols.pack, weights=lengths * unused_mask, minlength=npacks)
    unused_count = np.bincount(cols.pack, weights=unused_mask.astype(np.int64), minlength=npacks)
    has_rows = np.bincount(cols.pack, minlength=npacks) > 0
    plan.blobs_total = int(np.count_nonzero(distinct))
    plan.blobs_used = int(np.count_nonzero(keeper))
    plan.size_before = sum(fi.size for fi in stored.values())
    for p in np.flatnonzero(has_rows & ~present_pack).tolist():
        name = cols.packs[p].hex()
        if keep_count[p] > 0:
            plan.problems.append(
                f"pack {name[:16]} is named by the index and holds {int(keep_count[p])} used blob(s), "
                "but it is missing from storage"
            )
        else:
            plan.dropped.append(name)
    candidates: list[tuple[float, int]] = []
    for p in np.flatnonzero(has_rows & present_pack).tolist():
        if keep_count[p] == 0:
            plan.delete.append(cols.packs[p].hex())
            plan.blobs_removed += int(unused_count[p])
            plan.bytes_removed += stored[cols.packs[p].hex()].size
        elif unused_bytes[p] > 0:
            share = float(unused_bytes[p]) / float(unused_bytes[p] + keep_bytes[p])
            candidates.append((share, p))
    plan.bytes_used = int(keep_bytes.sum())
    remaining = int(sum(unused_bytes[p] for _, p in candidates))
    limit = max_unused * plan.bytes_used
    for _share, p in sorted(candidates, reverse=True):
        if remaining <= limit:
            break
        if max_repack is not None and plan.bytes_repack + int(keep_bytes[p]) > max_repack:
            continue
        plan.repack.append(cols.packs[p].hex())
        plan.bytes_repack += int(keep_bytes[p])
        plan.blobs_removed += int(unused_count[p])
        plan.bytes_removed += int(unused_bytes[p])
        remaining -= int(unused_bytes[p])
    plan.bytes_unused = remaining
    indexed = {cols.packs[p].hex() for p in np.flatnonzero(has_rows).tolist()}
    for name, fi in sorted(stored.items()):
        if name in indexed:
            continue
        if fi.mtime is not None and now - fi.mtime > grace:
            plan.unindexed.append(name)
            plan.bytes_removed += fi.size
        else:
            plan.young.append(name)
    return plan


@dataclass
class PruneResult:
    plan: PrunePlan
    packs_written: int = 0
    index_written: int = 0
    index_removed: int = 0
    packs_removed: int = 0
    size_after: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.plan.summary() | {
            "packs_written": self.packs_written,
            "index_written": self.index_written,
            "index_removed": self.index_removed,
            "packs_removed": self.packs_removed,
            "size_after": self.size_after,
        }


def execute_prune(
    repo: Repository,
    plan: PrunePlan,
    *,
    check: Callable[[], None],
    confirm: Callable[[], None],
    progress: Progress | None = None,
    old_index: set[str],
) -> PruneResult:
    """Carry out ``plan`` in the crash-safe order of the module docstring. ``check``/``confirm`` are the
    exclusive lock's (:meth:`Lock.check`, :meth:`Lock.confirm`): they raise LockLost, and nothing is
    deleted after that. ``old_index`` is the set of index files loaded when the plan was made."""
    if not plan.ok:
        raise IntegrityError(
            f"prune stopped before deleting anything: {plan.usage.problem_count or len(plan.problems)} "
            f"problem(s), first: {plan.problems[0]}",
            hint="Run 'safehold check' to see every problem; 'safehold repair index' rebuilds a damaged index "
            "from the packs, 'safehold repair snapshots' rewrites snapshots without what is lost.",
        )
    progress = progress or NullProgress()
    release_memory()  # the plan's walk of every tree is garbage now: not part of the repack's peak
    result = PruneResult(plan)
    cols = plan.usage.cols
    number = {p.hex(): i for i, p in enumerate(cols.packs)}
    # 1. repack
    if plan.repack:
        result.packs_written = repack(
            repo,
            cols,
            plan.keeper,
            plan.bytes_repack,
            [number[p] for p in plan.repack],
            check,
            confirm,
            progress,
        )
    # 2. the new index: every distinct entry of every pack that stays
    gone = {number[p] for p in plan.delete + plan.repack + plan.dropped}
    stay = np.ones(len(cols.packs), dtype=bool)
    stay[list(gone)] = False
    mask = plan.distinct & stay[cols.pack] if cols.rows else plan.distinct
    by_pack = rows_by_pack(cols, mask)
    records: list[tuple[bytes, bytes, list[PackedBlob]]] = []
    entries = 0
    progress.start("write index", total_files=len(by_pack))
    for p, rows in sorted(by_pack.items()):
        records.append((cols.packs[p], cols.envelopes[p], _entries(cols, rows)))
        entries += len(rows)
        if entries >= INDEX_ENTRIES:
            _save_index(repo, records, confirm)
            result.index_written += 1
            records, entries = [], 0
        progress.advance(files=1)
    if records:
        _save_index(repo, records, confirm)
        result.index_written += 1
    progress.finish()
    # 3. the old index files
    confirm()
    for name in sorted(old_index):
        check()
        _remove(repo, Handle(FileType.INDEX, name))
        result.index_removed += 1
    # 4. the packs
    doomed = plan.delete + plan.repack + plan.unindexed
    progress.start("delete packs", total_files=len(doomed))
    for name in doomed:
        check()
        _remove(repo, Handle(FileType.DATA, name))
        result.packs_removed += 1
        progress.advance(files=1)
    progress.finish()
    result.size_after = sum(fi.size for fi in repo.backend.list(FileType.DATA))
    return result


def _remove(repo: Repository, h: Handle) -> None:
    try:
        repo.backend.remove(h)
    except NotFoundError:
        pass  # gone already (an earlier, interrupted prune): the outcome is the same


def _entries(cols: IndexColumns, rows: npt.NDArray[np.int64]) -> list[PackedBlob]:
    raw_ids = cols.ids[rows].tobytes()
    return [
        PackedBlob(fl & 0x7F, raw_ids[32 * k : 32 * k + 32], off, ln, raw, bool(fl & 0x80))
        for k, (fl, off, ln, raw) in enumerate(
            zip(
                cols.flags[rows].tolist(),
                cols.offset[rows].tolist(),
                cols.length[rows].tolist(),
                cols.raw[rows].tolist(),
                strict=True,
            )
        )
    ]


def _save_index(
    repo: Repository, records: list[tuple[bytes, bytes, list[PackedBlob]]], confirm: Callable[[], None]
) -> None:
    confirm()
    repo.save_file(FileType.INDEX, encode_index(records))


def describe(plan: PrunePlan) -> list[str]:
    """The plan in words (for the CLI and notifications)."""
    lines = [
        f"{plan.blobs_total} blobs in {len(plan.stored)} packs ({human_bytes(plan.size_before)}); "
        f"{plan.blobs_used} used ({human_bytes(plan.bytes_used)})",
        f"delete {len(plan.delete)} pack(s) with no used blob, repack {len(plan.repack)} "
        f"(copying {human_bytes(plan.bytes_repack)} of used blobs), delete {len(plan.unindexed)} pack(s) "
        "that no index names",
        f"frees about {human_bytes(plan.bytes_removed)} ({plan.blobs_removed} blobs); unused data left: "
        f"{human_bytes(plan.bytes_unused)}",
    ]
    if plan.young:
        lines.append(
            f"left {len(plan.young)} pack(s) that no index names but were written within the grace period "
            "(a backup may still need them)"
        )
    if plan.dropped:
        lines.append(
            f"{len(plan.dropped)} pack(s) named by the index are missing and hold no used blob: dropped"
        )
    return lines
