"""``repair index`` and ``repair snapshots`` under an exclusive lock (see :mod:`safehold.engine.check.repair`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safehold.backends.base import FileType, Handle
from safehold.engine.check.repair import IndexRepair, SnapshotRepair, rebuild_index, repair_snapshots
from safehold.engine.format.repository import Repository
from safehold.engine.progress import Progress
from safehold.errors import NotFoundError


def repair_index(repo: Repository, progress: Progress | None = None) -> IndexRepair:
    lock = repo.lock(exclusive=True, operation="repair index")
    try:
        return rebuild_index(repo, confirm=lock.confirm, check=lock.check, progress=progress)
    finally:
        lock.release()


@dataclass
class SnapshotsRepair:
    repaired: list[SnapshotRepair] = field(default_factory=list)
    #: snapshot files that cannot be read at all: (name, why)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    checked: int = 0
    dry_run: bool = False

    @property
    def lost(self) -> int:
        return sum(len(r.lost) for r in self.repaired) + len(self.damaged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "repaired": [r.as_dict() for r in self.repaired],
            "damaged": [{"id": n, "error": e} for n, e in self.damaged],
            "removed": self.removed,
            "dry_run": self.dry_run,
        }


def repair_snapshot_files(
    repo: Repository,
    *,
    forget: bool,
    dry_run: bool,
    read_data: bool = False,
    progress: Progress | None = None,
) -> SnapshotsRepair:
    """Write a repaired copy of every snapshot that references lost data; with ``forget`` remove the
    originals, and the snapshot files that cannot be read at all (nobody can use them)."""
    lock = repo.lock(exclusive=True, operation="repair snapshots")
    try:
        out = SnapshotsRepair(dry_run=dry_run)
        snaps = []
        for fi in repo.backend.list(FileType.SNAPSHOT):
            try:
                s = repo.load_snapshot(fi.name)
            except Exception as exc:
                out.damaged.append((fi.name, str(exc)))
                continue
            snaps.append(s)
        out.checked = len(snaps)
        repo.load_index()
        out.repaired = repair_snapshots(
            repo,
            sorted(snaps, key=lambda s: (s.datetime, s.id)),
            dry_run=dry_run,
            read_data=read_data,
            check=lock.check,
            confirm=lock.confirm,
            progress=progress,
        )
        if forget and not dry_run:
            doomed = [r.snapshot.id for r in out.repaired if r.new is not None or r.unrecoverable]
            doomed += [name for name, _ in out.damaged]
            for name in doomed:
                lock.check()
                try:
                    repo.backend.remove(Handle(FileType.SNAPSHOT, name))
                except NotFoundError:
                    pass
                out.removed.append(name)
        return out
    finally:
        lock.release()
