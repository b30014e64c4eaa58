"""``prune``: free the space of data no snapshot references (see :mod:`safehold.engine.prune.pruner`).

Under an exclusive lock (waiting ``repo.lock_wait`` for running backups to finish): stale locks of others
are removed (so that a writer that outlived its lease stops before committing), the index is loaded
strictly (a damaged index file stops prune: rebuild it with ``repair index`` first), every snapshot is
read (a damaged snapshot file stops prune: what it references is unknown), then plan and, unless
``dry_run``, execute. Raises :class:`~safehold.errors.IntegrityError` when the repository has problems
that make deleting unsafe, :class:`~safehold.errors.RepositoryLocked`, or
:class:`~safehold.errors.LockLost` (nothing more is deleted once the lock is lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safehold.engine.format.crypto import SessionCache
from safehold.engine.format.lock import remove_stale
from safehold.engine.format.repository import Repository
from safehold.engine.progress import Progress
from safehold.engine.prune.leftovers import remove_leftovers, temporary_leftovers
from safehold.engine.prune.pruner import (
    DEFAULT_GRACE,
    DEFAULT_MAX_UNUSED,
    PrunePlan,
    PruneResult,
    execute_prune,
    plan_prune,
)
from safehold.errors import IntegrityError


@dataclass
class PruneOptions:
    max_unused: float = DEFAULT_MAX_UNUSED
    max_repack: int | None = None
    grace: float = DEFAULT_GRACE
    dry_run: bool = False
    workers: int = 2
    #: plan as if these snapshots were gone (``forget --prune -n``: what the forget would remove)
    without: frozenset[str] = frozenset()


@dataclass
class PruneOutcome:
    plan: PrunePlan
    result: PruneResult | None
    dry_run: bool
    stale_locks_removed: list[str] = field(default_factory=list)
    #: temporary files of interrupted writes older than a day: removed (or, in a dry run, found)
    temporary_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        body = self.result.as_dict() if self.result is not None else self.plan.summary()
        return body | {
            "dry_run": self.dry_run,
            "stale_locks_removed": self.stale_locks_removed,
            "temporary_files": self.temporary_files,
        }


def prune(repo: Repository, opts: PruneOptions, progress: Progress | None = None) -> PruneOutcome:
    lock = repo.lock(exclusive=True, operation="prune")
    try:
        stale = remove_stale(repo.backend, repo.keys.lock, SessionCache(repo.keys.lock), lock)
        index_errors: list[str] = []
        repo.load_index(errors=index_errors)
        if index_errors:
            raise IntegrityError(
                f"prune stopped before deleting anything: {index_errors[0]}",
                hint="Run 'safehold repair index' to rebuild the index from the packs, then prune again.",
            )
        old_index = set(repo.index_files)
        damaged: list[str] = []
        snaps = [s for s in repo.iter_snapshots(errors=damaged) if s.id not in opts.without]
        if damaged:
            raise IntegrityError(
                f"prune stopped before deleting anything: {len(damaged)} snapshot file(s) cannot be read, "
                f"first: {damaged[0]}",
                hint="What a damaged snapshot references is unknown, so prune could delete it. Put the file "
                "back from a copy, or remove it with 'safehold repair snapshots', then prune again.",
            )
        roots = []
        for s in snaps:
            try:
                tree = bytes.fromhex(s.tree)
            except ValueError:
                tree = b""
            if len(tree) != 32:
                raise IntegrityError(
                    f"prune stopped before deleting anything: snapshot {s.short_id} names a malformed tree id"
                )
            roots.append((tree, f"snapshot {s.short_id}"))
        lock.check()
        plan = plan_prune(
            repo,
            roots,
            max_unused=opts.max_unused,
            max_repack=opts.max_repack,
            grace=opts.grace,
            progress=progress,
            workers=opts.workers,
        )
        outcome = PruneOutcome(plan, None, opts.dry_run, [i.describe() for i in stale])
        leftovers = temporary_leftovers(repo.backend) if plan.ok else []
        outcome.temporary_files = len(leftovers)
        if opts.dry_run and plan.ok:
            return outcome
        remove_leftovers(repo.backend, leftovers, lock.check)
        if plan.ok and plan.nothing_to_do:
            outcome.result = PruneResult(plan, size_after=plan.size_before)
            return outcome
        # (a plan with problems raises here, naming them, before anything is deleted)
        outcome.result = execute_prune(
            repo, plan, check=lock.check, confirm=lock.confirm, progress=progress, old_index=old_index
        )
        return outcome
    finally:
        lock.release()
