"""Repack: copy the blobs a prune keeps out of mostly-unused packs into new ones, reading each pack in
bounded runs (never a whole pack); see :mod:`safehold.engine.prune.pruner` for when and in which order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import blake3
import numpy as np
import numpy.typing as npt

from safehold.backends.base import FileType, Handle
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.crypto import blob_ad
from safehold.engine.format.indexfile import IndexColumns
from safehold.engine.format.repository import Repository
from safehold.engine.format.sealer import Sealed
from safehold.engine.progress import Progress
from safehold.errors import IntegrityError


def rows_by_pack(cols: IndexColumns, mask: npt.NDArray[np.bool_]) -> dict[int, npt.NDArray[np.int64]]:
    """The rows of ``mask``, by pack number, each pack's by offset."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return {}
    rows = rows[np.lexsort((cols.offset[rows], cols.pack[rows]))]
    cuts = np.flatnonzero(np.diff(cols.pack[rows])) + 1
    return {int(cols.pack[g[0]]): g for g in np.split(rows, cuts)}


def _runs(cols: IndexColumns, rows: npt.NDArray[np.int64], gap: int, cap: int) -> list[npt.NDArray[np.int64]]:
    """Split one pack's kept rows (sorted by offset) into runs read with one request each: a run ends
    where the next blob starts more than ``gap`` bytes after it, or would take it past ``cap`` bytes
    (a blob larger than ``cap`` is a run of its own)."""
    offsets = cols.offset[rows].astype(np.int64)
    ends = offsets + cols.length[rows].astype(np.int64)
    runs: list[npt.NDArray[np.int64]] = []
    first = 0
    for k in range(1, len(rows)):
        if offsets[k] - ends[k - 1] > gap or ends[k] - offsets[first] > cap:
            runs.append(rows[first:k])
            first = k
    runs.append(rows[first:])
    return runs


#: Repack reads a pack's kept blobs in runs of at most this many bytes, one request each (a larger
#: blob is a run of its own), skipping the unused blobs between two runs when more than the gap lies
#: between them. Local storage: a ranged read is cheap, so runs are short and few bytes are read for
#: nothing; remote: a request costs more than reading a megabyte it does not need.
LOCAL_RUN, LOCAL_GAP = 1 << 20, 64 << 10
REMOTE_RUN, REMOTE_GAP = 4 << 20, 1 << 20
#: Sealed blobs handed to the writer together (at most this many bytes or BATCH_BLOBS, like its own batches).
BATCH_BYTES = 1 << 20
BATCH_BLOBS = 64


def repack(
    repo: Repository,
    cols: IndexColumns,
    keeper: npt.NDArray[np.bool_],
    total_bytes: int,
    packs: list[int],
    check: Callable[[], None],
    confirm: Callable[[], None],
    progress: Progress,
) -> int:
    """Copy the kept blobs (``keeper``: rows of ``cols``) of ``packs`` into new packs (``total_bytes`` of
    them, for the progress); returns how many were written.

    Each blob is decrypted, decompressed and re-hashed against its id (nothing unverified is copied),
    then its stored payload (still compressed) is encrypted under the writer's session and checked to
    decrypt back: compressing again would cost several times more and give the same bytes.

    Memory is bounded by bytes, not by packs: the kept blobs of a pack are read in runs of at most
    1 MiB (local) or 4 MiB (remote storage; one ranged read each, see :func:`_runs`), ``connections`` runs are read and sealed at
    once in threads (decryption, decompression and hashing release the interpreter lock), and at most
    one more run's sealed blobs wait while this thread hands the oldest to the writer (which appends
    them to spooled packs at once). A whole pack is never held."""
    by_pack = rows_by_pack(cols, keeper & np.isin(cols.pack, np.array(packs, dtype=np.uint32)))
    local_storage = repo.backend.properties.local
    cap, gap = (LOCAL_RUN, LOCAL_GAP) if local_storage else (REMOTE_RUN, REMOTE_GAP)
    # (pack, rows of the run, the pack's last run)
    work: list[tuple[int, npt.NDArray[np.int64], bool]] = []
    for p in packs:
        rows = by_pack.get(p)
        if rows is None:
            work.append((p, np.zeros(0, dtype=np.int64), True))
            continue
        runs = _runs(cols, rows, gap, cap)
        work += [(p, r, k == len(runs) - 1) for k, r in enumerate(runs)]
    writer = BlobWriter(repo, check=check, confirm=confirm)
    session = writer.session
    id_key = repo.keys.blob_id
    local = threading.local()
    progress.start("repack", total_files=len(packs), total_bytes=total_bytes)

    def read(p: int, rows: npt.NDArray[np.int64]) -> list[tuple[list[Sealed], bytes]]:
        """The run's blobs, verified and sealed again, in batches for :meth:`BlobWriter.submit_sealed`."""
        if not len(rows):
            return []
        pack_id, envelope = cols.packs[p], cols.envelopes[p]
        old = repo.sessions.for_envelope(envelope)
        offsets, lengths, raws = (
            cols.offset[rows].tolist(),
            cols.length[rows].tolist(),
            cols.raw[rows].tolist(),
        )
        flags = cols.flags[rows].tolist()
        start = offsets[0]
        data = repo.backend.load(
            Handle(FileType.DATA, pack_id.hex()), start, offsets[-1] + lengths[-1] - start
        )
        view = memoryview(data)
        dctx = getattr(local, "dctx", None)
        if dctx is None:
            dctx = local.dctx = repo.decompressor()
        raw_ids = cols.ids[rows].tobytes()
        batches: list[tuple[list[Sealed], bytes]] = []
        metas: dict[int, list[Sealed]] = {}
        cts: dict[int, list[bytes]] = {}
        sizes: dict[int, int] = {}

        def flush(t: int) -> None:
            if metas.get(t):
                batches.append((metas.pop(t), b"".join(cts.pop(t))))
                sizes[t] = 0

        for k, (fl, offset, length, raw_length) in enumerate(zip(flags, offsets, lengths, raws, strict=True)):
            blob_type, compressed = fl & 0x7F, bool(fl & 0x80)
            blob_id = raw_ids[32 * k : 32 * k + 32]
            what = f"blob {blob_id.hex()[:16]} of pack {pack_id.hex()[:16]}"
            ad = blob_ad(blob_type, blob_id)
            payload = old.open(view[offset - start : offset - start + length], ad, what)
            plain = dctx.decompress(payload, max_output_size=raw_length) if compressed else payload
            if (
                len(plain) != raw_length
                or blake3.blake3(plain, key=id_key, max_threads=1).digest() != blob_id
            ):
                raise IntegrityError(
                    f"{what} does not match its id", hint="Run 'safehold check --read-data'."
                )
            del plain
            sealed = session.seal(payload, ad)
            if session.open(sealed, ad, what) != payload:
                raise IntegrityError(f"{what} did not read back identically before upload (memory error?)")
            metas.setdefault(blob_type, []).append(
                Sealed(blob_type, blob_id, raw_length, len(sealed), compressed)
            )
            cts.setdefault(blob_type, []).append(sealed)
            sizes[blob_type] = sizes.get(blob_type, 0) + len(sealed)
            if sizes[blob_type] >= BATCH_BYTES or len(metas[blob_type]) >= BATCH_BLOBS:
                flush(blob_type)
        view.release()
        for t in list(metas):
            flush(t)
        return batches

    n_read = max(1, repo.backend.properties.connections)
    try:
        with ThreadPoolExecutor(max_workers=n_read, thread_name_prefix="safehold-repack") as pool:
            pending: deque[tuple[Future[list[tuple[list[Sealed], bytes]]], bool]] = deque()
            queue = deque(work)
            while queue or pending:
                while queue and len(pending) < n_read:
                    p, rows, last = queue.popleft()
                    pending.append((pool.submit(read, p, rows), last))
                fut, last = pending.popleft()
                batches = fut.result()
                nbytes = 0
                while batches:
                    metas, payload = batches.pop(0)  # each batch freed once it is in a pack
                    nbytes += len(payload)
                    writer.submit_sealed(metas, payload)
                    del payload
                progress.advance(files=1 if last else 0, nbytes=nbytes)
        writer.flush()
    except BaseException:
        writer.abort()
        raise
    progress.finish()
    return writer.stats.packs
