"""Writing blobs: compress, encrypt, verify, pack, upload, index.

The caller (one thread: the archiver) computes each blob's id itself (keyed BLAKE3 is cheap) and asks
:meth:`BlobWriter.reserve` whether the blob is new. New blobs go to :meth:`BlobWriter.submit`, which
hands them to a small thread pool: zstd, AES-GCM and BLAKE3 release the GIL on large buffers, so two
workers use both cores. Each worker seals a blob, decrypts and re-hashes it (a blob is never written
that would not read back), and appends it to one of several open packs of its type chosen at random.
A full pack is finalised by the worker that filled it and handed to an upload pool of
``backend.properties.connections`` threads (``uploads=`` overrides), so a remote backend receives several
packs at once while the workers keep packing; once a pack is saved its entries enter the index. At most
``connections`` finished packs wait for or are in upload (the worker that finishes one more blocks), and
the in-flight byte budget bounds the blobs being sealed: memory stays bounded whatever the input size.
Index files are written every ``INDEX_EVERY`` packs (so an interrupted backup or copy leaves most of its
work findable for the next run) and at :meth:`BlobWriter.flush`. The first failure (a save, the lock
check) stops the writer: later calls raise it, and no index file names a pack that was not saved.

Write order: a pack is saved before any index entry names it, and the snapshot (written by the caller
after :meth:`flush`) only after all index files naming its blobs.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import zstandard

from safehold.backends.base import FileType, Handle
from safehold.engine.crypto import Session, blob_ad
from safehold.engine.index import PackRecord, encode_index
from safehold.engine.memtune import tune_malloc
from safehold.engine.pack import DATA, TREE, PackBuilder, PackedBlob
from safehold.engine.repository import Repository
from safehold.errors import IntegrityError

INDEX_EVERY = 8
OPEN_DATA_PACKS = 2
MAX_IN_FLIGHT = 16 * 1024 * 1024
SMALL_BLOB = 64 * 1024
BATCH_BYTES = 1024 * 1024
BATCH_ITEMS = 64


class WriterStats:
    def __init__(self) -> None:
        self.blobs_new = 0
        self.bytes_new_raw = 0
        self.bytes_new_stored = 0
        self.packs = 0
        self.index_files = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class BlobWriter:
    """Writes new blobs into packs. Not reusable after :meth:`flush` or :meth:`abort`."""

    def __init__(
        self,
        repo: Repository,
        *,
        workers: int = 2,
        check: Callable[[], None] | None = None,
        uploads: int | None = None,
    ) -> None:
        tune_malloc()
        repo.load_index()
        self.repo = repo
        self.session = Session(repo.keys.data)
        self.stats = WriterStats()
        self._check = check or (lambda: None)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="safehold-pack")
        # One pack write per connection (local: 2, so that one pack's fsync does not stall the workers).
        n_up = max(1, uploads or repo.backend.properties.connections)
        self._uploads = ThreadPoolExecutor(max_workers=n_up, thread_name_prefix="safehold-upload")
        self._upload_slots = threading.BoundedSemaphore(n_up)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._reserved: set[bytes] = set()
        self._packs: dict[int, list[PackBuilder]] = {
            DATA: [PackBuilder(DATA) for _ in range(OPEN_DATA_PACKS)],
            TREE: [PackBuilder(TREE)],
        }
        self._unindexed: list[PackRecord] = []
        self._budget = threading.Condition()
        self._in_flight = 0
        self._error: BaseException | None = None
        self._futures: set[Future[None]] = set()
        self._batch: list[tuple[int, bytes, bytes, bool]] = []
        self._batch_bytes = 0
        self._level = repo.config.compression_level
        self._pack_size = repo.config.pack_size

    # ---- caller side -----------------------------------------------------------------------------
    def reserve(self, blob_id: bytes) -> bool:
        """True when the blob is unknown (caller must then submit it); False when already stored."""
        with self._lock:
            if blob_id in self._reserved or self.repo.index.has(blob_id):
                return False
            self._reserved.add(blob_id)
            return True

    def submit(self, blob_type: int, blob_id: bytes, data: bytes, *, fast: bool = False) -> None:
        """Queue a reserved blob for writing; blocks while too many bytes are in flight.

        Small blobs are batched (one work item per ~1 MiB or 64 blobs): per-item overhead and GIL hand-offs,
        not bytes, dominate small files. ``fast`` compresses with zstd level 1 instead of the repository's
        level (for streams such as database dumps, whose producer holds a transaction open while we
        keep up). Called from one thread (the archiver's).
        """
        self.raise_if_failed()
        if len(data) < SMALL_BLOB:
            self._batch.append((blob_type, blob_id, data, fast))
            self._batch_bytes += len(data)
            if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_ITEMS:
                self._submit_batch()
            return
        self._queue([(blob_type, blob_id, data, fast)], len(data))

    def _submit_batch(self) -> None:
        if self._batch:
            items, n = self._batch, self._batch_bytes
            self._batch, self._batch_bytes = [], 0
            self._queue(items, n)

    def _queue(self, items: list[tuple[int, bytes, bytes, bool]], n: int) -> None:
        with self._budget:
            while self._in_flight > 0 and self._in_flight + n > MAX_IN_FLIGHT:
                self._budget.wait(0.5)
                self.raise_if_failed()
            self._in_flight += n
        fut = self._pool.submit(self._work, items, n)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._done)

    def save_blob(self, blob_type: int, data: bytes) -> bytes:
        """Hash, dedupe and queue ``data``; return its id."""
        blob_id = self.repo.keys.blob_id_of(data)
        if self.reserve(blob_id):
            self.submit(blob_type, blob_id, data)
        return blob_id

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def flush(self) -> None:
        """Wait for all blobs, save the last packs and the index. After this, blobs are durable."""
        self._submit_batch()
        self._pool.shutdown(wait=True)
        self.raise_if_failed()
        for t in (DATA, TREE):
            for pb in self._packs[t]:
                if pb.entries:
                    self._hand_over(pb)
        self._uploads.shutdown(wait=True)
        self.raise_if_failed()
        self._write_index(force=True)

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._uploads.shutdown(wait=True, cancel_futures=True)

    # ---- worker side -----------------------------------------------------------------------------
    def _done(self, fut: Future[None]) -> None:
        with self._lock:
            self._futures.discard(fut)
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None and self._error is None:
            self._error = exc

    def _cctx(self, fast: bool) -> zstandard.ZstdCompressor:
        level = 1 if fast else self._level
        cache: dict[int, zstandard.ZstdCompressor] | None = getattr(self._local, "cctx", None)
        if cache is None:
            cache = self._local.cctx = {}
        c = cache.get(level)
        if c is None:
            c = cache[level] = zstandard.ZstdCompressor(level=level)
        return c

    def _dctx(self) -> zstandard.ZstdDecompressor:
        d: zstandard.ZstdDecompressor | None = getattr(self._local, "dctx", None)
        if d is None:
            d = zstandard.ZstdDecompressor()
            self._local.dctx = d
        return d

    def _seal(self, blob_type: int, blob_id: bytes, data: bytes, fast: bool) -> tuple[bytes, bool]:
        """Compress (when it pays), encrypt, and verify by decrypting, decompressing and re-hashing."""
        raw_len = len(data)
        payload: bytes = data
        compressed = False
        if raw_len >= 64:
            c = self._cctx(fast).compress(data)
            # Keep raw when compression saves less than 1/32: not worth the read-side work.
            if len(c) < raw_len - (raw_len >> 5):
                payload, compressed = c, True
        ad = blob_ad(blob_type, blob_id)
        sealed = self.session.seal(payload, ad)
        check = self.session.open(sealed, ad)
        if compressed:
            check = self._dctx().decompress(check, max_output_size=raw_len)
        if self.repo.keys.blob_id_of(check) != blob_id:
            raise IntegrityError("a blob did not read back identically before upload (memory error?)")
        return sealed, compressed

    def _work(self, items: list[tuple[int, bytes, bytes, bool]], nbytes: int) -> None:
        full: list[PackBuilder] = []
        try:
            if self._error is not None:
                return
            sealed = [self._seal(t, i, d, f) for t, i, d, f in items]
            with self._lock:
                for (blob_type, blob_id, data, _fast), (ct, compressed) in zip(items, sealed, strict=True):
                    packs = self._packs[blob_type]
                    pb = packs[random.randrange(len(packs))] if len(packs) > 1 else packs[0]
                    pb.add(blob_id, ct, len(data), compressed)
                    self.stats.blobs_new += 1
                    self.stats.bytes_new_raw += len(data)
                    self.stats.bytes_new_stored += len(ct)
                    if len(pb) >= self._pack_size:
                        packs[packs.index(pb)] = PackBuilder(blob_type)
                        full.append(pb)
        finally:
            with self._budget:
                self._in_flight -= nbytes
                self._budget.notify_all()
        for pb in full:
            self._hand_over(pb)

    def _hand_over(self, pb: PackBuilder) -> None:
        """Finish ``pb`` and queue it for upload; blocks while ``connections`` packs are queued."""
        entries = list(pb.entries)
        data, pack_id = pb.finish(self.session)
        while not self._upload_slots.acquire(timeout=0.5):
            self.raise_if_failed()
        try:
            self.raise_if_failed()
            fut = self._uploads.submit(self._save_pack, pb.blob_type, pack_id, data, entries)
        except BaseException:
            self._upload_slots.release()
            raise
        fut.add_done_callback(self._done)

    def _save_pack(self, blob_type: int, pack_id: bytes, data: bytearray, entries: list[PackedBlob]) -> None:
        """Upload one finished pack (an upload-pool thread), then index it."""
        try:
            if self._error is not None:
                return
            self._check()
            # Packs of file contents may go to a cold storage class; tree packs must stay readable.
            cold = blob_type == DATA
            self.repo.backend.save(Handle(FileType.DATA, pack_id.hex(), cold=cold), memoryview(data))
        finally:
            del data
            self._upload_slots.release()
        envelope = self.session.envelope
        self.repo.index.add_pack(pack_id, envelope, entries)
        with self._lock:
            for e in entries:
                self._reserved.discard(e.id)
            self._unindexed.append((pack_id, envelope, entries))
            self.stats.packs += 1
        self._write_index(force=False)

    def _write_index(self, *, force: bool) -> None:
        with self._lock:
            if not self._unindexed or (not force and len(self._unindexed) < INDEX_EVERY):
                return
            records, self._unindexed = self._unindexed, []
        self._check()
        name = self.repo.save_file(FileType.INDEX, encode_index(records))
        self.repo.index_files.add(name)
        self.stats.index_files += 1
