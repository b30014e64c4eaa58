"""Backup of file paths into a snapshot (components build on the same pieces in :mod:`.components`)."""

from __future__ import annotations

import getpass
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from safehold import __version__
from safehold.engine.backup.archiver import Archiver, VirtualDir
from safehold.engine.backup.filescache import FilesCache
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.lock import Lock
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import Node
from safehold.engine.fs.meta import node_from_stat
from safehold.engine.fs.select import Selector
from safehold.engine.progress import NullProgress, Progress
from safehold.errors import UsageError

MAX_ERRORS_IN_SNAPSHOT = 200


@dataclass
class BackupOptions:
    paths: list[str]
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    host: str | None = None
    time: str | None = None
    one_file_system: bool = False
    exclude_caches: bool = False
    exclude_if_present: list[str] = field(default_factory=list)
    use_cache: bool = True


@dataclass
class BackupResult:
    snapshot: Snapshot
    errors: list[str]

    @property
    def partial(self) -> bool:
        return self.snapshot.partial


def snapshot_time(value: str | None) -> str:
    """The time a snapshot records: now, or ``value``, with its UTC offset (this machine's zone unless
    ``value`` names one). Retention's days and weeks are those of the recorded zone, so a backup at 00:30
    in Berlin counts for that day, not the day before in UTC."""
    if value is None:
        return datetime.now(UTC).astimezone().isoformat(timespec="microseconds")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--time takes an ISO-8601 time, not {value!r}") from None
    return (dt if dt.tzinfo else dt.astimezone()).isoformat(timespec="microseconds")


def time_ahead(value: str | None, now: datetime | None = None) -> timedelta | None:
    """How far a ``--time`` value lies in the future of this clock; None when it does not (or is None).
    Raises UsageError for a value that is not ISO-8601, as the backup would."""
    if value is None:
        return None
    ahead = datetime.fromisoformat(snapshot_time(value)) - (now or datetime.now(UTC))
    return ahead if ahead > timedelta(0) else None


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


@dataclass
class Session:
    """A running backup: the lock, writer, archiver and virtual root it composes a snapshot in."""

    repo: Repository
    archiver: Archiver
    root: VirtualDir
    started: float
    errors: list[str]
    lock: Lock


@contextmanager
def backup_session(
    repo: Repository, *, progress: Progress | None = None, use_cache: bool = True
) -> Iterator[Session]:
    """Lock (shared), open a writer and an archiver; flush on success, abort on failure, always unlock."""
    lock = repo.lock(exclusive=False, operation="backup")
    cache = FilesCache.for_repository(repo.config.id, repo.keys.cache, time.time_ns()) if use_cache else None
    writer = BlobWriter(repo, check=lock.check, confirm=lock.confirm)
    archiver = Archiver(repo, writer, cache=cache, progress=progress or NullProgress())
    session = Session(repo, archiver, VirtualDir(), time.time(), archiver.errors, lock)
    try:
        yield session
    except BaseException:
        writer.abort()
        raise
    finally:
        lock.release()
        if cache is not None:
            cache.close()


def commit(
    session: Session, snap_fields: dict[str, Any], on_saved: Callable[[], None] | None = None
) -> Snapshot:
    """Save the root tree, flush blobs and index, then write the snapshot (in that order)."""
    arch = session.archiver
    root = arch.build(session.root)
    arch.writer.flush()
    assert root.subtree is not None
    errors = list(session.errors)
    summary = {
        **arch.stats.as_dict(),
        **{f"added_{k}": v for k, v in arch.writer.stats.as_dict().items()},
        "duration_seconds": round(time.time() - session.started, 3),
        "errors": len(errors),
    }
    snap = Snapshot(
        tree=root.subtree.hex(),
        program_version=__version__,
        partial=bool(errors) or bool(snap_fields.pop("partial", False)),
        errors=errors[:MAX_ERRORS_IN_SNAPSHOT],
        summary=summary,
        **snap_fields,
    )
    session.lock.confirm()  # a lost lock (removed by unlock --remove-all, say) commits nothing
    session.repo.save_snapshot(snap)
    if arch.cache is not None:
        arch.cache.commit()
    if on_saved is not None:
        on_saved()
    return snap


def add_path(session: Session, selector: Selector, path: bytes) -> None:
    """Archive an absolute path below the session's root, recreating its parent folders."""
    arch = session.archiver
    if not selector.root_selected(path):
        for p, msg in selector.errors:
            session.errors.append(f"{os.fsdecode(p)}: {msg}")
        selector.errors.clear()
        return
    parts = [p for p in path.split(b"/") if p]
    if not parts:  # the file-system root: its entries become the snapshot root's
        st = os.lstat(b"/")
        session.root.meta = node_from_stat(b"", b"/", st)
        for name, _est in selector.scan(b"/", st):
            child = arch.archive_path(b"/" + name, selector, name=name)
            if child is not None:
                session.root.add(child)
        return

    def meta(i: int) -> Node | None:
        p = b"/" + b"/".join(parts[: i + 1])
        try:
            return node_from_stat(parts[i], p, os.lstat(p))
        except OSError:
            return None

    parent = session.root.walk_to(parts[:-1], meta)
    node = arch.archive_path(path, selector, name=parts[-1])
    if node is not None:
        parent.add(node)


def count_totals(paths: list[bytes], opts: BackupOptions) -> tuple[int, int]:
    """Files and bytes a backup will process (a metadata-only walk, for the progress ETA)."""
    sel = Selector(
        paths,
        excludes=opts.excludes,
        one_file_system=opts.one_file_system,
        exclude_caches=opts.exclude_caches,
        exclude_if_present=opts.exclude_if_present,
    )
    files = nbytes = 0
    stack = [(p, os.lstat(p)) for p in paths if sel.root_selected(p)]
    while stack:
        path, st = stack.pop()
        if stat.S_ISDIR(st.st_mode):
            base = path.rstrip(b"/") + b"/"
            stack.extend((base + name, est) for name, est in sel.scan(path, st))
        elif stat.S_ISREG(st.st_mode):
            files += 1
            nbytes += st.st_size
    return files, nbytes


def backup_paths(repo: Repository, opts: BackupOptions, progress: Progress | None = None) -> BackupResult:
    if not opts.paths:
        raise UsageError("backup needs at least one path (or a --profile from the configuration)")
    paths = sorted({os.path.abspath(os.fsencode(p)) for p in opts.paths})
    for p in paths:
        if any(p != q and p.startswith(q.rstrip(b"/") + b"/") for q in paths):
            raise UsageError(f"{os.fsdecode(p)} is inside another path of the same backup; give it once")
    with backup_session(repo, progress=progress, use_cache=opts.use_cache) as session:
        selector = Selector(
            paths,
            excludes=opts.excludes,
            one_file_system=opts.one_file_system,
            exclude_caches=opts.exclude_caches,
            exclude_if_present=opts.exclude_if_present,
        )
        if progress is not None:
            totals = count_totals(paths, opts) if getattr(progress, "wants_totals", False) else (None, None)
            progress.start("backup", total_files=totals[0], total_bytes=totals[1])
        for p in paths:
            add_path(session, selector, p)
        snap = commit(
            session,
            {
                "time": snapshot_time(opts.time),
                "paths": [os.fsdecode(p) for p in paths],
                "hostname": opts.host or socket.gethostname(),
                "username": current_user(),
                "tags": sorted(set(opts.tags)),
                "excludes": list(opts.excludes),
            },
        )
        if progress is not None:
            progress.finish()
    return BackupResult(snap, snap.errors)
