"""Writing blobs: seal, pack, upload, index.

The caller (one thread: the archiver) computes each blob's id itself (keyed BLAKE3 is cheap) and asks
:meth:`BlobWriter.reserve` whether the blob is new. New blobs go to :meth:`BlobWriter.submit`, which
batches small ones and hands each batch to a :class:`~safehold.engine.format.sealer.Sealer` (compress,
encrypt, and verify by decrypting and re-hashing: a blob is never written that would not read back).
The first ``PROCESS_AFTER`` bytes are sealed by a small thread pool in this process; past that, the
writer starts helper processes (:class:`~safehold.engine.format.sealer.SealerProcess`) so that sealing does not
compete with the archiver for the interpreter lock. Small jobs never pay for starting a process.

Sealed batches are appended to one of several open packs of their type chosen at random; a pack lives
in a spool (a file, see :mod:`safehold.backends.spool`), not in memory. A full pack is finished and
handed to an upload pool of ``backend.properties.connections`` threads (``uploads=`` overrides), so a
remote backend receives several packs at once while sealing goes on; once a pack is saved its entries
enter the index. At most ``connections`` finished packs wait for or are in upload, and the in-flight byte
budget bounds the blobs being sealed: memory stays bounded whatever the input size. Index files are
written every ``INDEX_EVERY`` packs (so an interrupted backup or copy leaves most of its work findable
for the next run) and at :meth:`BlobWriter.flush`. The first failure (a save, the lock check, a helper)
stops the writer: later calls raise it, and no index file names a pack that was not saved.

Write order: a pack is saved before any index entry names it, and the snapshot (written by the caller
after :meth:`flush`) only after all index files naming its blobs.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from safehold.backends.base import FileType, Handle
from safehold.backends.spool import open_spool
from safehold.engine.format.crypto import Session
from safehold.engine.format.indexfile import PackRecord, encode_index
from safehold.engine.format.pack import DATA, TREE, PackBuilder
from safehold.engine.format.repository import Repository
from safehold.engine.format.sealer import Item, Sealed, Sealer, SealerError, SealerProcess
from safehold.engine.memtune import tune_malloc

INDEX_EVERY = 8
OPEN_DATA_PACKS = 2
MAX_IN_FLIGHT = 16 * 1024 * 1024
PROCESS_AFTER = 32 * 1024 * 1024
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
        process_after: int | None = PROCESS_AFTER,
        confirm: Callable[[], None] | None = None,
    ) -> None:
        """``check`` runs before each pack is saved, ``confirm`` (default ``check``) before each index file:
        the lock's cheap check and its forced read-back (:meth:`safehold.engine.format.lock.Lock.confirm`).
        ``process_after``: bytes sealed in threads before helper processes take over (None: never)."""
        tune_malloc()
        repo.load_index()
        self.repo = repo
        self.session = Session(repo.keys.data)
        self.stats = WriterStats()
        self._check = check or (lambda: None)
        self._confirm = confirm or self._check
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="safehold-pack")
        self._process_after = process_after
        self._sealers: list[SealerProcess] = []
        self._queued = 0
        # One pack write per connection (local: 2, so that one pack's fsync does not stall the workers).
        n_up = max(1, uploads or repo.backend.properties.connections)
        self._uploads = ThreadPoolExecutor(max_workers=n_up, thread_name_prefix="safehold-upload")
        self._upload_slots = threading.BoundedSemaphore(n_up)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._reserved: set[bytes] = set()
        # Open packs, created on first use (a backup that adds nothing creates no file).
        self._packs: dict[int, list[PackBuilder | None]] = {DATA: [None] * OPEN_DATA_PACKS, TREE: [None]}
        self._unindexed: list[PackRecord] = []
        self._budget = threading.Condition()
        self._in_flight = 0
        self._error: BaseException | None = None
        self._futures: set[Future[None]] = set()
        self._batches: dict[int, list[Item]] = {DATA: [], TREE: []}
        self._batch_bytes: dict[int, int] = {DATA: 0, TREE: 0}
        self._level = repo.config.compression_level
        self._pack_size = repo.config.pack_size
        self._batch_limit = min(BATCH_BYTES, self._pack_size // 4)  # a batch goes into one pack

    # ---- caller side -----------------------------------------------------------------------------
    def reserve(self, blob_id: bytes) -> bool:
        """True when the blob is unknown (caller must then submit it); False when already stored."""
        with self._lock:
            if blob_id in self._reserved or self.repo.index.has(blob_id):
                return False
            self._reserved.add(blob_id)
            return True

    def reserve_many(self, blob_ids: list[bytes]) -> list[bool]:
        """:meth:`reserve` for many ids at once (one index search for all): True for each id the caller
        must submit; an id that appears twice is True only the first time."""
        with self._lock:
            reserved = self._reserved
            out = [False] * len(blob_ids)
            todo = [k for k, b in enumerate(blob_ids) if b not in reserved]
            if not todo:
                return out
            known = self.repo.index.has_many([blob_ids[k] for k in todo])
            for k, stored in zip(todo, known, strict=True):
                b = blob_ids[k]
                if not stored and b not in reserved:
                    reserved.add(b)
                    out[k] = True
            return out

    def submit(self, blob_type: int, blob_id: bytes, data: bytes | memoryview, *, fast: bool = False) -> None:
        """Queue a reserved blob for writing; blocks while too many bytes are in flight.

        Small blobs are batched (one work item per ~1 MiB or 64 blobs of one type): per-item overhead,
        not bytes, dominates small files. ``fast`` compresses with zstd level 2 (``STREAM_LEVEL``) instead of
        the repository's level (for streams such as database dumps, whose producer holds a transaction open
        while we keep up). ``data`` may be a writable view the caller reuses once this returns (a
        chunking window): the writer copies it when it keeps it, and a helper process receives it
        without a copy. Called from one thread (the archiver's).
        """
        self.raise_if_failed()
        item = Item(blob_type, blob_id, data, fast)
        if len(data) >= SMALL_BLOB:
            self._queue([item], len(data))
            return
        batch = self._batches[blob_type]
        batch.append(_kept(item))
        self._batch_bytes[blob_type] += len(data)
        if self._batch_bytes[blob_type] >= self._batch_limit or len(batch) >= BATCH_ITEMS:
            self._submit_batch(blob_type)

    def _submit_batch(self, blob_type: int) -> None:
        items = self._batches[blob_type]
        if items:
            n = self._batch_bytes[blob_type]
            self._batches[blob_type], self._batch_bytes[blob_type] = [], 0
            self._queue(items, n)

    def _queue(self, items: list[Item], n: int) -> None:
        with self._budget:
            while self._in_flight > 0 and self._in_flight + n > MAX_IN_FLIGHT:
                self._budget.wait(0.5)
                self.raise_if_failed()
            self._in_flight += n
        self._queued += n
        if self._process_after is not None and self._queued > self._process_after:
            if not self._sealers:
                self._start_sealers()
            try:
                min(self._sealers, key=lambda sp: sp.pending_bytes).submit(items)
            except SealerError:
                self.raise_if_failed()  # the helper was stopped because of this first failure
                raise
            return
        fut = self._pool.submit(self._work, [_kept(i) for i in items])
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._done)

    def _start_sealers(self) -> None:
        for part in range(1, self._workers + 1):
            self._sealers.append(
                SealerProcess(
                    self.session,
                    part,
                    self.repo.keys.blob_id,
                    self._level,
                    on_result=self._sealed,
                    on_error=self._fail,
                )
            )

    def submit_sealed(self, metas: list[Sealed], payload: bytes | bytearray) -> None:
        """Add blobs the caller sealed itself under :attr:`session` (their ciphertexts back to back in
        ``payload``): prune's repack re-encrypts the stored, already compressed bytes instead of
        compressing again. The caller has verified them; they go straight into packs. One thread."""
        self.raise_if_failed()
        n = sum(m.raw_length for m in metas)
        with self._budget:
            while self._in_flight > 0 and self._in_flight + n > MAX_IN_FLIGHT:
                self._budget.wait(0.5)
                self.raise_if_failed()
            self._in_flight += n
        self._sealed(metas, payload)  # releases the budget again

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
        for t in (DATA, TREE):
            self._submit_batch(t)
        self._pool.shutdown(wait=True)
        for sp in self._sealers:
            sp.close(wait=True)
        self.raise_if_failed()
        for t in (DATA, TREE):
            for i, pb in enumerate(self._packs[t]):
                self._packs[t][i] = None
                if pb is not None:
                    self._hand_over(pb)
        self._uploads.shutdown(wait=True)
        self.raise_if_failed()
        self._write_index(force=True)

    def abort(self) -> None:
        self._fail(RuntimeError("aborted"))
        self._pool.shutdown(wait=True, cancel_futures=True)
        for sp in self._sealers:
            sp.close(wait=False)
        self._uploads.shutdown(wait=True, cancel_futures=True)
        for packs in self._packs.values():
            for i, pb in enumerate(packs):
                packs[i] = None
                if pb is not None:
                    pb.spool.discard()

    # ---- sealing side ----------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        with self._budget:
            self._budget.notify_all()

    def _done(self, fut: Future[None]) -> None:
        with self._lock:
            self._futures.discard(fut)
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None:
            self._fail(exc)

    def _work(self, items: list[Item]) -> None:
        """Seal a batch in this process (a pool thread)."""
        sealer: Sealer | None = getattr(self._local, "sealer", None)
        if sealer is None:
            sealer = self._local.sealer = Sealer(self.session, self.repo.keys.blob_id, self._level)
        if self._error is not None:
            return
        metas, cts = sealer.seal_batch(items)
        self._sealed(metas, b"".join(cts))

    def _sealed(self, metas: list[Sealed], payload: bytes | bytearray) -> None:
        """A sealed batch (from a pool thread or a helper's collector): pack it, release its budget."""
        try:
            if self._error is None:
                full = self._append(metas, payload)
                if full is not None:
                    self._hand_over(full)
        finally:
            with self._budget:
                self._in_flight -= sum(m.raw_length for m in metas)
                self._budget.notify_all()

    def _append(self, metas: list[Sealed], payload: bytes | bytearray) -> PackBuilder | None:
        """Add a sealed batch (one blob type) to an open pack of its type; return that pack if now full.

        The global lock only picks the pack; the write (to the pack's spool) holds the pack's own lock,
        so the archiver's :meth:`reserve` and the other sealers are not held up by file writes.
        """
        blob_type = metas[0].type
        while True:
            with self._lock:
                packs = self._packs[blob_type]
                slot = random.randrange(len(packs)) if len(packs) > 1 else 0
                pb = packs[slot]
                if pb is None:
                    pb = packs[slot] = PackBuilder(blob_type, open_spool(self.repo.backend, FileType.DATA))
            with pb.lock:
                if pb.closed:
                    continue  # filled and handed over by another thread meanwhile
                pb.add(metas, payload)
                with self._lock:
                    self.stats.blobs_new += len(metas)
                    self.stats.bytes_new_raw += sum(m.raw_length for m in metas)
                    self.stats.bytes_new_stored += len(payload)
                if len(pb) < self._pack_size:
                    return None
                pb.closed = True
                with self._lock:
                    if packs[slot] is pb:
                        packs[slot] = None
                return pb

    def _hand_over(self, pb: PackBuilder) -> None:
        """Finish ``pb`` and queue it for upload; blocks while ``connections`` packs are queued."""
        pb.closed = True
        if not pb.entries:
            pb.spool.discard()
            return
        pack_id = pb.finish(self.session)
        while not self._upload_slots.acquire(timeout=0.5):
            if self._error is not None:
                pb.spool.discard()
                raise self._error
        try:
            self.raise_if_failed()
            fut = self._uploads.submit(self._save_pack, pb, pack_id)
        except BaseException:
            pb.spool.discard()
            self._upload_slots.release()
            raise
        fut.add_done_callback(self._done)

    def _save_pack(self, pb: PackBuilder, pack_id: bytes) -> None:
        """Save one finished pack (an upload-pool thread), then index it."""
        try:
            if self._error is not None:
                return
            self._check()
            # Packs of file contents may go to a cold storage class; tree packs must stay readable.
            cold = pb.blob_type == DATA
            pb.spool.commit(Handle(FileType.DATA, pack_id.hex(), cold=cold))
        finally:
            pb.spool.discard()
            self._upload_slots.release()
        envelope = self.session.envelope
        entries = pb.entries
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
        self._confirm()
        name = self.repo.save_file(FileType.INDEX, encode_index(records))
        self.repo.index_files.add(name)
        self.stats.index_files += 1


def _kept(item: Item) -> Item:
    """``item`` with bytes the caller cannot change later (see :meth:`BlobWriter.submit`)."""
    if isinstance(item.data, memoryview) and not item.data.readonly:
        return Item(item.type, item.id, bytes(item.data), item.fast)
    return item
