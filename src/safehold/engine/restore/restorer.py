"""Restoring a snapshot's tree to disk.

Walk the trees (applying include/exclude patterns and the overwrite policy) and restore file contents in
batches on the way: once a batch holds ``batch_files`` files or ``batch_blobs`` blobs, it is restored and
dropped, so the plan held in memory does not grow with the snapshot; a batch is restored in a background
thread while the walk plans the next one (:class:`_Batches`). For each batch, every pack it needs
is read once, runs of nearby blobs at a time, ``workers`` packs in parallel (2 on local storage, the
backend's ``connections`` on remote storage, whose trees are fetched in bulk first). Every blob is
decrypted, decompressed and checked against its id before a byte of it is written; a large restore does
that and the file writes in helper processes (:mod:`safehold.engine.restore.extractor`), started as soon as
the walk has planned ``helpers_from`` files and used for every batch that begins from then on. A file is assembled
under a temporary name next to its final path (new, unpredictable, created with ``O_EXCL``), its metadata
applied, and only then renamed into place: a file that could not be restored completely is never left
at its final path. A file of one blob in a folder this restore created (new, mode 0700 until its own
metadata is applied at the end, so private to the restore) is written as an unnamed file of that folder
(``O_TMPFILE``) instead and linked in under its final name once complete (``linkat``): the same promise
without a temporary name, a random draw and a rename per file. Below the target nothing is looked up by
path: folders are opened one name at a time without following symlinks and every entry is made relative
to its folder's descriptor (:mod:`safehold.engine.fs.safedir`); a symlink where a folder must be is
replaced only with ``overwrite="always"``, else refused with everything below it. A second run after an
interruption skips files already complete (same type, size and mtime) under ``if-changed``. A progress
that ``wants_totals`` gets them from a first, metadata-only walk.

Order: folders, then file contents, then hard links, symlinks and special files, then folder metadata
from the deepest folder up (writing into a folder changes its mtime).

This module walks, plans and orders; restoring a batch of file contents (reading packs, proving blobs,
writing files under temporary or no names) is :class:`~safehold.engine.restore.filecontents.FileContents`,
which :class:`Restorer` extends.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, Node
from safehold.engine.format.treewalk import PathFilter, prefetch_trees, walk_wanted
from safehold.engine.fs.meta import apply_metadata
from safehold.engine.fs.safedir import DirTree, InTheWay
from safehold.engine.memtune import gc_paused, tune_malloc
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.restore.extractor import ExtractorProcess
from safehold.engine.restore.filecontents import LOCK_STRIPES, FileContents, Job, RestoreStats
from safehold.engine.restore.restorelinks import finish_others
from safehold.errors import UsageError

OVERWRITE_POLICIES = ("never", "if-changed", "always")
#: Largest read from a local pack: bounds the memory each reader holds (remote reads stay whole-pack,
#: where every request is a round trip).
_LOCAL_READ = 2 * 1024 * 1024
#: Restores of at least this many files prove and write in helper processes (started when the walk has
#: planned that many; the batches before go on in this process meanwhile). Below it one process is
#: faster: on the real corpus, 1,054 / 3,527 / 5,722 files took 0.76x-0.85x of the CPU and 0.59x-0.87x of
#: the time with helpers, and 200 files of 1 MiB no longer; 43,537 files took 1.32x the time without.
HELPERS_FROM = 8192
#: File contents are restored in batches of at most this many files or blobs (a file's blobs count whole).
BATCH_FILES = 4096
BATCH_BLOBS = 8192


class Restorer(FileContents):
    def __init__(
        self,
        repo: Repository,
        *,
        overwrite: str = "if-changed",
        progress: Progress | None = None,
        restore_owner: bool | None = None,
        workers: int | None = None,
        helpers_from: int = HELPERS_FROM,
        batch_files: int = BATCH_FILES,
        batch_blobs: int = BATCH_BLOBS,
    ) -> None:
        """``workers`` is how many packs are read at once (default: 2 on local storage, else the
        backend's ``connections``, at least 2); helper processes start when ``helpers_from`` files are
        planned (batches restored before that run in this process); see the module docstring for the
        batches."""
        if overwrite not in OVERWRITE_POLICIES:
            raise UsageError(f"--overwrite takes one of {', '.join(OVERWRITE_POLICIES)}")
        tune_malloc()
        self.repo = repo
        self.overwrite = overwrite
        self.progress = progress or NullProgress()
        self.restore_owner = os.geteuid() == 0 if restore_owner is None else restore_owner
        props = repo.backend.properties
        self.workers = workers or (2 if props.local else max(2, props.connections))
        self._max_read = _LOCAL_READ if props.local else None
        self._helpers_from = helpers_from
        self._batch = (batch_files, batch_blobs)
        self._helpers: queue.SimpleQueue[ExtractorProcess] | None = None
        self._started: list[ExtractorProcess] = []
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._tree: DirTree  # the folders below the target (set by restore)
        self._started_ns = 0
        self.stats = RestoreStats()

    # ---- planning --------------------------------------------------------------------------------
    def restore(
        self,
        start: Node,
        target: bytes,
        *,
        includes: list[str] | None = None,
        excludes: list[str] | None = None,
        base: bytes = b"",
        trusted: bytes | None = None,
        own_metadata: bool = False,
    ) -> RestoreStats:
        """Restore the children of folder node ``start`` below ``target``. ``trusted``: a folder above
        ``target`` from which the folders down to ``target`` are walked like those below it (only
        symlinks owned by root are followed there), else ``target`` is opened as named.
        ``own_metadata``: also give ``target`` the metadata of ``start`` (when all went well).

        Python's cyclic garbage collector is paused meanwhile (the plan is many small acyclic objects:
        collecting them found nothing and cost ~3% of a large restore's CPU)."""
        self.repo.load_index()
        self._tree = tree = DirTree(target, replace=self.overwrite == "always", trusted=trusted)
        self._started_ns = time.time_ns()
        with gc_paused():
            try:
                if start.type != DIR or start.subtree is None:
                    return self._restore_single(start)
                self._restore_tree(start, includes, excludes, base)
                if own_metadata and not self.stats.errors:
                    with tree.opened(b"") as fd:
                        self.stats.warnings += apply_metadata(
                            target, start, restore_owner=self.restore_owner, fd=fd
                        )
            finally:
                tree.close()
        return self.stats

    def _restore_tree(
        self, start: Node, includes: list[str] | None, excludes: list[str] | None, base: bytes
    ) -> None:
        assert start.subtree is not None
        self._sweep(b"")
        flt = PathFilter(includes or [], excludes or [], base)
        dirs: list[tuple[bytes, Node]] = []
        later: list[tuple[bytes, Node]] = []
        jobs: list[Job] = []
        links: dict[tuple[int, int], bytes] = {}
        local = self.repo.backend.properties.local
        trees = None if local else prefetch_trees(self.repo, start.subtree, self.workers)
        totals: tuple[int | None, int | None] = (None, None)
        if getattr(self.progress, "wants_totals", False):
            totals = _totals(walk_wanted(self.repo, start.subtree, flt, cache=trees))
        self.progress.start("restore", total_files=totals[0], total_bytes=totals[1])
        planned = blobs = 0
        folder = b""
        batches = _Batches(self._restore_contents)
        try:
            for rel, node, want in walk_wanted(self.repo, start.subtree, flt, cache=trees):
                if node.type == DIR:
                    if want is None:
                        later.append((rel, node))
                    elif self._ensure(rel) is not None:
                        dirs.append((rel, node))
                    continue
                if want is None:
                    continue
                parent, name = os.path.split(rel)
                if parent != folder:  # the files of one folder share one object (see Job)
                    folder = parent
                if not self._ensure_parent(folder, later, dirs):
                    continue
                key = (node.device, node.inode)
                if node.type != FILE or (node.links > 1 and key in links):
                    later.append((rel, node))
                    continue
                if node.links > 1:
                    links[key] = rel
                if self._skip_existing(folder, name, node):
                    self.stats.files_skipped += 1
                    self.progress.advance(files=1, nbytes=node.size)
                    continue
                jobs.append(Job(folder, name, node, len(node.content)))
                planned += 1
                if planned >= self._helpers_from and self._helpers is None:
                    self._start_helpers()  # starting up while the batches before go on in this process
                blobs += len(node.content)
                if len(jobs) >= self._batch[0] or blobs >= self._batch[1]:
                    batches.submit(jobs)
                    jobs, blobs = [], 0
            batches.submit(jobs)
            jobs = []
            batches.wait()
        finally:
            self._drop_temps(batches.close())
            self._stop_helpers()
            self._drop_temps(jobs)
            self.progress.finish()
        finish_others(later, links, self.overwrite, self.restore_owner, self.stats, self._tree)
        # deepest first (reverse order puts a folder after everything below it)
        for rel, node in sorted(dirs, key=lambda x: x[0], reverse=True):
            try:
                with self._tree.opened(rel) as fd:
                    shown = os.fsencode(self._tree.path(rel))
                    self.stats.warnings += apply_metadata(
                        shown, node, restore_owner=self.restore_owner, fd=fd
                    )
            except InTheWay as exc:
                if not exc.reported:
                    self.stats.errors.append(str(exc))

    def _ensure(self, rel: bytes) -> list[bytes] | None:
        """Make sure folder ``rel`` exists below the target: the folders met on the way for the first
        time, None (reported) when it cannot be."""
        tree = self._tree
        if rel in tree.ids:
            return []
        try:
            new = tree.ensure(rel)
        except InTheWay as exc:
            if not exc.reported:
                self.stats.errors.append(str(exc))
            return None
        except OSError as exc:
            self.stats.errors.append(f"{tree.path(rel)}: cannot create folder: {exc.strerror}")
            return None
        self.stats.dirs += len(new)
        for d in new:
            if d not in tree.created:
                self._sweep(d)
        return new

    def _sweep(self, rel: bytes) -> None:
        """Remove what an interrupted restore left in a folder that existed before this one."""
        try:
            self._tree.sweep(rel, self._started_ns)
        except (OSError, InTheWay):
            pass

    def _ensure_parent(
        self, parent: bytes, pending: list[tuple[bytes, Node]], dirs: list[tuple[bytes, Node]]
    ) -> bool:
        """The folder of a wanted entry: folders that were not wanted themselves (include patterns) are
        created on the way, and get their metadata too."""
        if parent in self._tree.ids:
            return True
        new = self._ensure(parent)
        if new is None:
            return False
        if new:
            made = set(new)
            dirs += [(p, n) for p, n in pending if n.type == DIR and p in made]
        return True

    def _skip_existing(self, folder: bytes, name: bytes, node: Node) -> bool:
        tree = self._tree
        if folder in tree.created:
            return False
        try:
            with tree.opened(folder) as dfd:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except (OSError, InTheWay):
            return False  # the write reports it
        if self.overwrite == "never":
            return True
        if stat.S_ISDIR(st.st_mode):
            self.stats.errors.append(f"{tree.path(folder, name)}: a folder is in the way of a file")
            return True
        return (
            self.overwrite == "if-changed"
            and stat.S_ISREG(st.st_mode)
            and st.st_size == node.size
            and st.st_mtime_ns == node.mtime_ns
        )

    def _restore_single(self, node: Node) -> RestoreStats:
        if node.type == FILE:
            if not self._skip_existing(b"", node.name, node):
                self.progress.start("restore", total_files=1, total_bytes=node.size)
                jobs = [Job(b"", node.name, node, len(node.content))]
                try:
                    if self._helpers_from <= 1:
                        self._start_helpers()
                    self._restore_contents(jobs)
                finally:
                    self._stop_helpers()
                    self.progress.finish()
        else:
            finish_others([(node.name, node)], {}, self.overwrite, self.restore_owner, self.stats, self._tree)
        return self.stats


class _Batches:
    """Restores batches of file contents in one background thread while the caller walks the trees and
    plans the next batch (walking is Python work; restoring a batch is mostly helpers' and the kernel's):
    one batch restores while at most one more is planned. :meth:`submit` first waits for the batch before
    (and raises what it raised)."""

    def __init__(self, restore: Callable[[list[Job]], None]) -> None:
        self._restore = restore
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._jobs: list[Job] = []

    def submit(self, jobs: list[Job]) -> None:
        self.wait()
        if not jobs:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safehold-batch")
        self._jobs = jobs
        self._running = self._pool.submit(self._restore, jobs)

    def wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> list[Job]:
        """Wait for the batch under way (whatever happened to it) and end the thread; the jobs of the last
        batch (an interrupted one may have left temporary files)."""
        if self._running is not None:
            try:
                self._running.result()
            except BaseException:  # the caller is already raising its own
                pass
            self._running = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return self._jobs


def _totals(items: Iterator[tuple[bytes, Node, bool | None]]) -> tuple[int, int]:
    """Files and bytes whose contents a restore goes through (a hard-linked inode once), for progress."""
    files = nbytes = 0
    inodes: set[tuple[int, int]] = set()
    for _rel, node, want in items:
        key = (node.device, node.inode)
        if node.type != FILE or want is None or (node.links > 1 and key in inodes):
            continue
        if node.links > 1:
            inodes.add(key)
        files += 1
        nbytes += node.size
    return files, nbytes
