"""Restoring file contents: the regular files a restore planned (:class:`Job`), their blobs read from
the packs and written into place.

:class:`FileContents` is the half of :class:`~safehold.engine.restore.restorer.Restorer` that restores a
batch of jobs (the restorer plans the batches while it walks the trees): every pack the batch needs is
read once, runs of nearby blobs at a time, ``workers`` packs in parallel; every blob is decrypted,
decompressed and checked against its id before a byte of it is written, in this process or in helper
processes (:mod:`safehold.engine.restore.extractor`). A file is assembled under a temporary name next to
its final path (created with ``O_EXCL``), its metadata applied, and only then renamed into place; a file
of one blob in a folder this restore created is written unnamed (``O_TMPFILE``) and linked in once
complete. Every file is reached through its folder's descriptor (:mod:`safehold.engine.fs.safedir`).
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from safehold.backends.base import FileType, Handle
from safehold.engine.format.pack import DATA, PackedBlob
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import Node
from safehold.engine.fs.meta import apply_metadata, write_sparse_aware
from safehold.engine.fs.safedir import DirTree, InTheWay, create_temp, open_temp
from safehold.engine.memtune import release_memory
from safehold.engine.progress import Progress
from safehold.engine.restore.extractor import (
    PLAIN_WRITE,
    Blob,
    ExtractorProcess,
    Target,
    file_meta,
    read_groups,
    same_blob_runs,
    write_all,
    write_whole,
)
from safehold.errors import IntegrityError, SafeholdError

#: Jobs share this many locks (a lock per file would cost more memory than the rest of its plan).
LOCK_STRIPES = 64


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
class Job:
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
Piece = tuple[int, int, int, bool, bytes, Job, int]


class FileContents:
    """Restores batches of :class:`Job` (see the module docstring). The state it works with is set up by
    :class:`~safehold.engine.restore.restorer.Restorer`, which is a :class:`FileContents`."""

    repo: Repository
    progress: Progress
    restore_owner: bool
    workers: int
    stats: RestoreStats
    _max_read: int | None
    _helpers: queue.SimpleQueue[ExtractorProcess] | None
    _started: list[ExtractorProcess]
    _locks: list[threading.Lock]
    _tree: DirTree

    def _lock(self, job: Job) -> threading.Lock:
        return self._locks[id(job) // 64 % LOCK_STRIPES]

    def _shown(self, job: Job) -> str:
        return self._tree.path(job.folder, job.name)

    def _drop_temps(self, jobs: list[Job]) -> None:
        """Remove the temporary files of ``jobs`` that were not completed (an interrupted batch)."""
        for job in jobs:
            if job.tmp is not None and (job.failed or job.remaining):
                self._unlink_temp(job)

    def _unlink_temp(self, job: Job) -> None:
        if job.tmp is None:
            return
        try:
            with self._tree.opened(job.folder) as dfd:
                os.unlink(job.tmp, dir_fd=dfd)
        except (OSError, InTheWay):
            pass
        job.tmp = None

    # ---- contents --------------------------------------------------------------------------------
    def _start_helpers(self) -> None:
        """Start the helper processes (once per restore: :meth:`_stop_helpers` ends them); the batches
        that begin from then on use them."""
        if self._helpers is not None:
            return
        helpers: queue.SimpleQueue[ExtractorProcess] = queue.SimpleQueue()
        root_id = self._tree.ids[b""]
        for _ in range(self.workers):
            vp = ExtractorProcess(
                self.repo.keys.data, self.repo.keys.blob_id, self.restore_owner, self._tree.root, root_id
            )
            self._started.append(vp)
            helpers.put(vp)
        self._helpers = helpers

    def _restore_contents(self, jobs: list[Job]) -> None:
        """Restore one batch (in helper processes once they are started)."""
        if not jobs:
            return
        # Per pack, one flat tuple per (blob, place in a file): a restore plan holds one per chunk of
        # every file, so no objects beyond the tuple (see Piece).
        by_pack: dict[bytes, list[Piece]] = {}
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
        self, item: tuple[bytes, bytes, list[Piece]], helpers: queue.SimpleQueue[ExtractorProcess] | None
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
        self, helpers: queue.SimpleQueue[ExtractorProcess], envelope: bytes, group: list[Piece], data: bytes
    ) -> None:
        """Hand one run of blobs to a helper process (see :mod:`safehold.engine.restore.extractor`)."""
        base = group[0][0]
        blobs: list[Blob] = []
        targets: list[Target] = []
        placed: list[tuple[Job, bool, int]] = []
        tree = self._tree
        folder: bytes | None = None
        folder_id: list[int] = []
        direct = False
        for i, same in same_blob_runs(group):
            offset, length, raw_length, compressed, blob_id, _job, _off = group[i]
            index = len(blobs)
            blobs.append((offset - base, length, raw_length, compressed, blob_id))
            for p in group[i:same]:
                job, off = p[5], p[6]
                if job.folder != folder:  # the files of a folder are mostly neighbours in a pack
                    folder = job.folder
                    folder_id, direct = list(tree.ids[folder]), folder in tree.created
                whole = len(job.node.content) == 1  # this blob is the whole file: the helper finishes it
                if whole:
                    meta = file_meta(job.node, self.restore_owner)
                    targets.append((index, folder, folder_id, None, 0, job.name, off, meta, direct))
                else:
                    targets.append((index, folder, folder_id, job.tmp, job.ino, None, off, None, False))
                placed.append((job, whole, raw_length))
        vp = helpers.get()
        try:
            results = vp.extract(envelope, blobs, targets, data)
        finally:
            helpers.put(vp)
        files = written = 0
        for (job, whole, nbytes), (err, warnings) in zip(placed, results, strict=True):
            if warnings:
                self.stats.warnings += warnings
            if whole:  # a file of one blob: no other piece, so no other thread, touches its job
                if err is None:
                    files += 1
                    written += nbytes
                elif not job.failed:
                    job.failed = True
                    self.stats.errors.append(f"{self._shown(job)}: not restored: {err}")
                continue
            with self._lock(job):
                if err is not None:
                    if not job.failed:
                        job.failed = True
                        self.stats.errors.append(f"{self._shown(job)}: not restored: {err}")
                    continue
                written += nbytes
                job.remaining -= 1
                if job.remaining == 0 and not job.failed:
                    self._complete(job)
        self.stats.files += files
        self.stats.bytes_written += written
        if files or written:
            self.progress.advance(files=files, nbytes=written)

    def _fail_all(self, pieces: list[Piece], msg: str) -> None:
        for p in pieces:
            job = p[5]
            with self._lock(job):
                if not job.failed:
                    job.failed = True
                    self.stats.errors.append(f"{self._shown(job)}: not restored: {msg}")

    def _create(self, job: Job) -> bool:
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

    def _metadata(self, job: Job, fd: int) -> None:
        shown = os.fsencode(self._shown(job))
        self.stats.warnings += apply_metadata(shown, job.node, restore_owner=self.restore_owner, fd=fd)

    def _write(self, job: Job, offset: int, data: bytes) -> None:
        with self._lock(job):
            if job.failed:
                return
            try:
                with self._tree.opened(job.folder) as dfd:
                    if job.tmp is None and len(job.node.content) == 1:  # the whole file in one piece
                        path = os.fsencode(self._shown(job))
                        direct = job.folder in self._tree.created
                        meta = file_meta(job.node, self.restore_owner)
                        self.stats.warnings += write_whole(
                            dfd, job.name, data, meta, self.restore_owner, path, direct=direct
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

    def _complete(self, job: Job) -> None:
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

    def _rename(self, job: Job, dfd: int) -> None:
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
