"""Restoring a snapshot's tree to disk.

Walk the trees (applying include/exclude patterns and the overwrite policy) and restore file contents in
batches on the way: once a batch holds ``batch_files`` files or ``batch_blobs`` blobs, it is restored and
dropped, so the plan held in memory does not grow with the snapshot; a batch is restored in a background
thread while the walk plans the next one (:class:`_Batches`). For each batch, every pack it needs
is read once, runs of nearby blobs at a time, ``workers`` packs in parallel (2 on local storage, the
backend's ``connections`` on remote storage, whose trees are fetched in bulk first). Every blob is
decrypted, decompressed and checked against its id before a byte of it is written; a large restore does
that and the file writes in helper processes (:mod:`safehold.engine.restore.extractor`), started once the walk
has planned ``helpers_from`` files and used for every batch from then on. A file is assembled
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
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from safehold.backends.base import FileType, Handle
from safehold.engine.format.pack import DATA, PackedBlob
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, Node
from safehold.engine.format.treewalk import PathFilter, prefetch_trees, walk_wanted
from safehold.engine.fs.meta import apply_metadata, owner_ids, write_sparse_aware
from safehold.engine.fs.safedir import DirTree, InTheWay, create_temp, open_temp
from safehold.engine.memtune import release_memory, tune_malloc
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.restore.extractor import (
    PLAIN_WRITE,
    Blob,
    ExtractorProcess,
    Target,
    read_groups,
    same_blob_runs,
    write_all,
    write_whole,
)
from safehold.engine.restore.restorelinks import finish_others
from safehold.errors import IntegrityError, SafeholdError, UsageError

OVERWRITE_POLICIES = ("never", "if-changed", "always")
#: Largest read from a local pack: bounds the memory each reader holds (remote reads stay whole-pack,
#: where every request is a round trip).
_LOCAL_READ = 2 * 1024 * 1024
#: Restores of at least this many files prove and write in helper processes.
HELPERS_FROM = 256
#: File contents are restored in batches of at most this many files or blobs (a file's blobs count whole).
BATCH_FILES = 4096
BATCH_BLOBS = 8192
#: Jobs share this many locks (a lock per file would cost more memory than the rest of its plan).
_LOCK_STRIPES = 64


@dataclass
class RestoreStats:
    files: int = 0
    files_skipped: int = 0
    dirs: int = 0
    bytes_written: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(slots=True)
class _Job:
    """One regular file to restore (one per file: slots keep a plan of millions of files small)."""

    folder: bytes  # relative to the target (one object shared by the files of a folder)
    name: bytes
    node: Node
    remaining: int
    tmp: bytes | None = None  # the temporary file's name once created
    ino: int = 0  # and its inode
    failed: bool = False

    @property
    def created(self) -> bool:
        return self.tmp is not None


#: One blob's place in one file: (offset in pack, stored length, raw length, compressed, blob id, job,
#: offset in the file).
_Piece = tuple[int, int, int, bool, bytes, _Job, int]


class Restorer:
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
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._tree: DirTree  # the folders below the target (set by restore)
        self._started_ns = 0
        self.stats = RestoreStats()

    def _lock(self, job: _Job) -> threading.Lock:
        return self._locks[id(job) // 64 % _LOCK_STRIPES]

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
        ``own_metadata``: also give ``target`` the metadata of ``start`` (when all went well)."""
        self.repo.load_index()
        self._tree = tree = DirTree(target, replace=self.overwrite == "always", trusted=trusted)
        self._started_ns = time.time_ns()
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
        jobs: list[_Job] = []
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
                if parent != folder:  # the files of one folder share one object (see _Job)
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
                jobs.append(_Job(folder, name, node, len(node.content)))
                planned += 1
                blobs += len(node.content)
                if len(jobs) >= self._batch[0] or blobs >= self._batch[1]:
                    batches.submit(jobs, planned)
                    jobs, blobs = [], 0
            batches.submit(jobs, planned)
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
                jobs = [_Job(b"", node.name, node, len(node.content))]
                try:
                    self._restore_contents(jobs, 1)
                finally:
                    self._stop_helpers()
                    self.progress.finish()
        else:
            finish_others([(node.name, node)], {}, self.overwrite, self.restore_owner, self.stats, self._tree)
        return self.stats

    def _shown(self, job: _Job) -> str:
        return self._tree.path(job.folder, job.name)

    def _drop_temps(self, jobs: list[_Job]) -> None:
        """Remove the temporary files of ``jobs`` that were not completed (an interrupted batch)."""
        for job in jobs:
            if job.tmp is not None and (job.failed or job.remaining):
                self._unlink_temp(job)

    def _unlink_temp(self, job: _Job) -> None:
        if job.tmp is None:
            return
        try:
            with self._tree.opened(job.folder) as dfd:
                os.unlink(job.tmp, dir_fd=dfd)
        except (OSError, InTheWay):
            pass
        job.tmp = None

    # ---- contents --------------------------------------------------------------------------------
    def _restore_contents(self, jobs: list[_Job], planned: int) -> None:
        """Restore one batch; ``planned``: files of the restore so far (helpers start at ``helpers_from``)."""
        if not jobs:
            return
        # Per pack, one flat tuple per (blob, place in a file): a restore plan holds one per chunk of
        # every file, so no objects beyond the tuple (see _Piece).
        by_pack: dict[bytes, list[_Piece]] = {}
        envelopes: dict[bytes, bytes] = {}
        locs = iter(self.repo.index.lookup_many([b for job in jobs for b in job.node.content]))
        for job in jobs:
            if not job.node.content:
                if self._create(job):
                    self._complete(job)
                continue
            off = 0
            found = [next(locs) for _ in job.node.content]
            for blob_id, loc in zip(job.node.content, found, strict=True):
                if loc is None or loc.type != DATA:
                    job.failed = True
                    self.stats.errors.append(
                        f"{self._shown(job)}: blob {blob_id.hex()[:16]} is missing from the repository"
                    )
                    break
                envelopes[loc.pack_id] = loc.envelope
                by_pack.setdefault(loc.pack_id, []).append(
                    (loc.offset, loc.length, loc.raw_length, loc.compressed, blob_id, job, off)
                )
                off += loc.raw_length
        release_memory()  # what walking freed (decoded trees), before the readers allocate
        work = [(pid, envelopes[pid], pieces) for pid, pieces in by_pack.items()]
        del by_pack
        if self._helpers is None and planned >= self._helpers_from:
            self._helpers = queue.SimpleQueue()
            root_id = self._tree.ids[b""]
            for _ in range(self.workers):  # once per restore: _stop_helpers ends them
                vp = ExtractorProcess(
                    self.repo.keys.data, self.repo.keys.blob_id, self.restore_owner, self._tree.root, root_id
                )
                self._started.append(vp)
                self._helpers.put(vp)
        helpers = self._helpers
        if helpers is not None:
            for job in jobs:
                if len(job.node.content) > 1 and not job.failed:
                    self._create(job)  # pieces of one file may arrive from several helpers
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="safehold-restore") as pool:
            list(pool.map(lambda item: self._restore_pack(item, helpers), work))
        for job in jobs:
            if job.failed:
                self._unlink_temp(job)

    def _stop_helpers(self) -> None:
        self._helpers = None
        while self._started:
            self._started.pop().close()

    def _restore_pack(
        self, item: tuple[bytes, bytes, list[_Piece]], helpers: queue.SimpleQueue[ExtractorProcess] | None
    ) -> None:
        pack_id, envelope, pieces = item
        h = Handle(FileType.DATA, pack_id.hex())
        for group in read_groups(pieces, self._max_read):
            first, last = group[0], group[-1]
            try:
                data = self.repo.backend.load(h, first[0], last[0] + last[1] - first[0])
            except SafeholdError as exc:
                self._fail_all(group, f"pack {pack_id.hex()[:16]} unreadable: {exc}")
                continue
            if helpers is not None:
                self._extract(helpers, envelope, group, data)
                continue
            mv = memoryview(data)
            for i, same in same_blob_runs(group):
                offset, length, raw_length, compressed, blob_id, _job, _off = group[i]
                start = offset - first[0]
                loc = PackedBlob(DATA, blob_id, offset, length, raw_length, compressed)
                try:
                    plain = self.repo.decode_blob(blob_id, loc, envelope, mv[start : start + length])
                except IntegrityError as exc:
                    self._fail_all(group[i:same], str(exc))
                else:
                    for p in group[i:same]:
                        self._write(p[5], p[6], plain)

    def _extract(
        self, helpers: queue.SimpleQueue[ExtractorProcess], envelope: bytes, group: list[_Piece], data: bytes
    ) -> None:
        """Hand one run of blobs to a helper process (see :mod:`safehold.engine.restore.extractor`)."""
        base = group[0][0]
        blobs: list[Blob] = []
        targets: list[Target] = []
        placed: list[tuple[_Job, bool, int]] = []
        for i, same in same_blob_runs(group):
            offset, length, raw_length, compressed, blob_id, _job, _off = group[i]
            index = len(blobs)
            blobs.append((offset - base, length, raw_length, compressed, blob_id))
            for p in group[i:same]:
                job, off = p[5], p[6]
                whole = len(job.node.content) == 1  # this blob is the whole file: the helper finishes it
                meta = None
                if whole:
                    node = job.node
                    uid, gid = owner_ids(node)
                    meta = [node.mode, uid, gid, node.atime_ns, node.mtime_ns, node.xattrs]
                folder_id = list(self._tree.ids[job.folder])
                if whole:
                    direct = job.folder in self._tree.created
                    targets.append((index, job.folder, folder_id, None, 0, job.name, off, meta, direct))
                else:
                    targets.append((index, job.folder, folder_id, job.tmp, job.ino, None, off, meta, False))
                placed.append((job, whole, raw_length))
        vp = helpers.get()
        try:
            results = vp.extract(envelope, blobs, targets, data)
        finally:
            helpers.put(vp)
        for (job, whole, nbytes), (err, warnings) in zip(placed, results, strict=True):
            self.stats.warnings += warnings
            with self._lock(job):
                if err is not None:
                    if not job.failed:
                        job.failed = True
                        self.stats.errors.append(f"{self._shown(job)}: not restored: {err}")
                    continue
                self.stats.bytes_written += nbytes
                self.progress.advance(nbytes=nbytes)
                if whole:
                    self.stats.files += 1
                    self.progress.advance(files=1)
                    continue
                job.remaining -= 1
                if job.remaining == 0 and not job.failed:
                    self._complete(job)

    def _fail_all(self, pieces: list[_Piece], msg: str) -> None:
        for p in pieces:
            job = p[5]
            with self._lock(job):
                if not job.failed:
                    job.failed = True
                    self.stats.errors.append(f"{self._shown(job)}: not restored: {msg}")

    def _create(self, job: _Job) -> bool:
        """Create the job's temporary file at its full size; False (and the job failed) if impossible.
        An empty file gets its metadata here too."""
        try:
            with self._tree.opened(job.folder) as dfd:
                job.tmp, fd = create_temp(dfd, job.name)
                try:
                    job.ino = os.fstat(fd).st_ino
                    if job.node.size:
                        os.ftruncate(fd, job.node.size)
                    else:
                        self._metadata(job, fd)
                finally:
                    os.close(fd)
        except InTheWay as exc:
            job.failed = True
            if not exc.reported:
                self.stats.errors.append(str(exc))
            return False
        except OSError as exc:
            job.failed = True
            self.stats.errors.append(f"{self._shown(job)}: cannot create: {exc.strerror}")
            return False
        return True

    def _metadata(self, job: _Job, fd: int) -> None:
        shown = os.fsencode(self._shown(job))
        self.stats.warnings += apply_metadata(shown, job.node, restore_owner=self.restore_owner, fd=fd)

    def _write(self, job: _Job, offset: int, data: bytes) -> None:
        with self._lock(job):
            if job.failed:
                return
            try:
                with self._tree.opened(job.folder) as dfd:
                    if job.tmp is None and len(job.node.content) == 1:  # the whole file in one piece
                        shown = self._shown(job)
                        direct = job.folder in self._tree.created
                        self.stats.warnings += write_whole(
                            dfd, job.name, data, job.node, self.restore_owner, shown, direct=direct
                        )
                        job.remaining = 0
                        self.stats.files += 1
                        self.progress.advance(files=1)
                        self.stats.bytes_written += len(data)
                        self.progress.advance(nbytes=len(data))
                        return
                    # the first write creates the file (pre-sized, so skipped zero blocks read as zeros)
                    if job.tmp is None:
                        job.tmp, fd = create_temp(dfd, job.name)
                        job.ino = os.fstat(fd).st_ino if job.remaining > 1 else 0
                        fresh = True
                    else:
                        fd = open_temp(dfd, job.tmp, job.ino)
                        fresh = False
                    try:
                        whole = fresh and offset == 0 and len(data) == job.node.size
                        if whole and len(data) <= PLAIN_WRITE:
                            write_all(fd, data)  # a small file in one piece: holes are not worth it
                        else:
                            if fresh:
                                os.ftruncate(fd, job.node.size)
                            write_sparse_aware(fd, offset, data)
                        job.remaining -= 1
                        if job.remaining == 0:  # the last piece: metadata through this descriptor
                            self._metadata(job, fd)
                    finally:
                        os.close(fd)
                    if job.remaining == 0:
                        self._rename(job, dfd)
            except InTheWay as exc:
                job.failed = True
                if not exc.reported:
                    self.stats.errors.append(str(exc))
                return
            except OSError as exc:
                job.failed = True
                self.stats.errors.append(f"{self._shown(job)}: write failed: {exc.strerror}")
                return
            self.stats.bytes_written += len(data)
            self.progress.advance(nbytes=len(data))

    def _complete(self, job: _Job) -> None:
        """Finish a job whose contents are all written (by helpers, or an empty file): metadata (unless
        already applied, for an empty file) and the rename into place."""
        assert job.tmp is not None
        try:
            with self._tree.opened(job.folder) as dfd:
                if job.node.size:
                    fd = open_temp(dfd, job.tmp, job.ino)
                    try:
                        self._metadata(job, fd)
                    finally:
                        os.close(fd)
                self._rename(job, dfd)
        except InTheWay as exc:
            job.failed = True
            if not exc.reported:
                self.stats.errors.append(str(exc))
        except OSError as exc:
            job.failed = True
            self.stats.errors.append(f"{self._shown(job)}: not restored: {exc.strerror}")

    def _rename(self, job: _Job, dfd: int) -> None:
        assert job.tmp is not None
        try:
            os.replace(job.tmp, job.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except IsADirectoryError:
            job.failed = True
            self.stats.errors.append(f"{self._shown(job)}: a folder is in the way of a file")
            return
        job.tmp = None
        self.stats.files += 1
        self.progress.advance(files=1)


class _Batches:
    """Restores batches of file contents in one background thread while the caller walks the trees and
    plans the next batch (walking is Python work; restoring a batch is mostly helpers' and the kernel's):
    one batch restores while at most one more is planned. :meth:`submit` first waits for the batch before
    (and raises what it raised)."""

    def __init__(self, restore: Callable[[list[_Job], int], None]) -> None:
        self._restore = restore
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._jobs: list[_Job] = []

    def submit(self, jobs: list[_Job], planned: int) -> None:
        self.wait()
        if not jobs:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safehold-batch")
        self._jobs = jobs
        self._running = self._pool.submit(self._restore, jobs, planned)

    def wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> list[_Job]:
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
