"""Sealing blobs: compress, encrypt, and verify before anything is written — here or in helper processes.

:class:`Sealer` turns one blob into its pack ciphertext: zstd (kept only when it saves at least 1/32),
AES-256-GCM under the writer's session with associated data binding version, type and id, then the
check that makes a written blob trustworthy: decrypt, decompress and re-hash, and compare with the id.

A backup spends most of its CPU here, and Python threads cannot share that with the archiver's thread:
every small file's syscalls wait for the interpreter lock while a sealing thread holds it. So a large
write is sealed by helper processes (:class:`SealerProcess`, ``python -m safehold.engine.format.sealer``), each
running a :class:`Sealer` on its own share of the session's nonce space (see
:meth:`~safehold.engine.format.crypto.Session.partition`). A helper never touches the repository: it receives
batches of plaintext blobs on its stdin and answers with their ciphertexts on its stdout, in order; the
writer's threads put them into packs. It knows the session key and the blob-id key, nothing else.

Frames (see :mod:`safehold.engine.helper`); the payload is the blobs' bytes back to back. Requests: ``[session id, session key,
partition, id key, level]`` once, then ``[[type, id, length, fast], ...]`` per batch. Replies:
``[[sealed length, compressed], ...]`` per batch, or ``["error", message]``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import blake3
import zstandard

from safehold.engine import helper
from safehold.engine.format.crypto import Session, blob_ad
from safehold.engine.helper import HelperError, recv_frame, send_frame
from safehold.errors import IntegrityError


class SealerError(HelperError):
    """A helper process that seals blobs failed or exited."""


@dataclass(frozen=True)
class Item:
    """One blob to seal."""

    type: int
    id: bytes
    data: bytes | memoryview
    fast: bool


@dataclass(frozen=True)
class Sealed:
    """One sealed blob's place in a batch's payload."""

    type: int
    id: bytes
    raw_length: int
    length: int
    compressed: bool


#: The zstd level of streams (``fast`` items: database dumps). Measured per 1.5 MiB chunk on a 765 MB
#: mariadb-dump (benchmarks/dbbench.py data, issue 16): level 1 272 MiB in 1.70 CPU-s, level 2 234 MiB in
#: 1.84 s, level 3 228 MiB in 2.68 s; restic stores the same dump in 238-240 MiB. Level 2 is the size of
#: restic's repository for 8% more compression CPU (0.2 s per GB); level 3 would cost 58% more.
STREAM_LEVEL = 2


class Sealer:
    """Seals blobs under one session partition. Not thread-safe: one per thread or process."""

    def __init__(self, session: Session, id_key: bytes, level: int) -> None:
        self.session = session
        self._id_key = id_key
        self._level = level
        self._cctx: dict[int, zstandard.ZstdCompressor] = {}
        self._dctx = zstandard.ZstdDecompressor()

    def seal(self, item: Item) -> tuple[bytes, bool]:
        """Compress (when it pays), encrypt, and verify by decrypting, decompressing and re-hashing.

        ``fast`` uses :data:`STREAM_LEVEL` instead of the repository's level (for streams such as database
        dumps, whose producer holds a transaction open while we keep up).
        """
        data = item.data
        raw_len = len(data)
        payload: bytes | memoryview = data
        compressed = False
        if raw_len >= 64:
            level = STREAM_LEVEL if item.fast else self._level
            cctx = self._cctx.get(level)
            if cctx is None:
                cctx = self._cctx[level] = zstandard.ZstdCompressor(level=level)
            c = cctx.compress(data)
            if len(c) < raw_len - (raw_len >> 5):
                payload, compressed = c, True
            del c  # an output that did not pay must not stay alive through the check below
        ad = blob_ad(item.type, item.id)
        sealed = self.session.seal(payload, ad)
        del payload  # a blob of up to max_size: hold at most the input, the sealed and the check copy
        check = self.session.open(sealed, ad)
        if compressed:
            check = self._dctx.decompress(check, max_output_size=raw_len)
        if blake3.blake3(check, key=self._id_key, max_threads=1).digest() != item.id:
            raise IntegrityError("a blob did not read back identically before upload (memory error?)")
        return sealed, compressed

    def seal_batch(self, items: Sequence[Item]) -> tuple[list[Sealed], list[bytes]]:
        metas: list[Sealed] = []
        out: list[bytes] = []
        for it in items:
            ct, compressed = self.seal(it)
            metas.append(Sealed(it.type, it.id, len(it.data), len(ct), compressed))
            out.append(ct)
        return metas, out


# ---- helper process ------------------------------------------------------------------------------------


def serve(rfd: int, wfd: int) -> None:
    """The helper's loop: an init frame, then one reply per batch until end of input."""
    sid, key, part, id_key, level = helper.recv_init(rfd, 5, "sealer")
    sealer = Sealer(Session.partition(sid, key, part), id_key, level)
    while True:
        try:
            header, payload = recv_frame(rfd)
        except EOFError:
            return
        assert isinstance(header, list)
        view = memoryview(payload)
        items: list[Item] = []
        pos = 0
        for t, blob_id, n, fast in header:
            items.append(Item(t, blob_id, view[pos : pos + n], fast))
            pos += n
        try:
            metas, cts = sealer.seal_batch(items)
        except Exception as e:  # reported to the writer, which stops the backup with it
            send_frame(wfd, ["error", f"{type(e).__name__}: {e}"])
            continue
        del items, view, payload
        send_frame(wfd, [[m.length, m.compressed] for m in metas], cts)


class SealerProcess(helper.Client):
    """One helper process, the thread that sends it batches and the thread that collects its replies.

    :meth:`submit` (one caller thread) queues a batch and returns: the sending thread writes it to the
    helper's pipe, so the caller goes on walking files while the pipe is full, up to the writer's
    in-flight budget, instead of waiting for the helper to take the next batch. ``on_result(metas,
    payload)`` runs in the collector thread for each batch in order, ``on_error(exc)`` if the helper
    fails.
    """

    error = SealerError

    def __init__(
        self,
        session: Session,
        part: int,
        id_key: bytes,
        level: int,
        on_result: Callable[[list[Sealed], bytearray], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        super().__init__(
            "safehold.engine.format.sealer", "sealing", [session.session_id, session.key, part, id_key, level]
        )
        self._pending: deque[list[tuple[int, bytes, int]]] = deque()  # (type, id, length) per sent blob
        self._cond = threading.Condition()
        self.pending_bytes = 0
        self._on_result = on_result
        self._on_error = on_error
        self._outbox: deque[tuple[list[list[object]], list[bytes | memoryview]]] = deque()
        self._send_cond = threading.Condition()
        self._closing = False
        self._failed: BaseException | None = None
        self._sender = threading.Thread(target=self._send, name="safehold-sealer-send", daemon=True)
        self._sender.start()
        self._thread = threading.Thread(target=self._collect, name="safehold-sealer-collect", daemon=True)
        self._thread.start()

    def submit(self, items: list[Item]) -> None:
        """Queue a batch for the sending thread. A writable view is copied (the caller may reuse it once
        this returns, as a chunking window is); other bytes are sent as they are."""
        if self._failed is not None:
            raise self._failed
        header: list[list[object]] = [[i.type, i.id, len(i.data), i.fast] for i in items]
        parts = [
            bytes(d) if isinstance(d, memoryview) and not d.readonly else d for d in (i.data for i in items)
        ]
        with self._cond:
            self._pending.append([(i.type, i.id, len(i.data)) for i in items])
            self.pending_bytes += sum(len(p) for p in parts)
        with self._send_cond:
            self._outbox.append((header, parts))
            self._send_cond.notify()

    def _send(self) -> None:
        try:
            while True:
                with self._send_cond:
                    while not self._outbox and not self._closing:
                        self._send_cond.wait()
                    if not self._outbox:
                        return
                    header, parts = self._outbox.popleft()
                send_frame(self._wfd, header, parts)
                del header, parts
        except OSError as e:
            self._failed = self.exited(e.strerror)
            self._on_error(self._failed)
            self._proc.kill()  # the collector then sees the end of the replies

    def _collect(self) -> None:
        try:
            while True:
                try:
                    header, payload = recv_frame(self._rfd)
                except EOFError:
                    with self._cond:
                        if not self._pending:
                            return
                    self._proc.wait()
                    raise self.exited() from None
                with self._cond:
                    items = self._pending.popleft()
                    self.pending_bytes -= sum(n for _t, _id, n in items)
                if isinstance(header, list) and header[:1] == ["error"]:
                    msg = str(header[1])
                    if msg.startswith("IntegrityError: "):
                        raise IntegrityError(msg.removeprefix("IntegrityError: "))
                    raise SealerError(f"sealing failed in a helper process: {msg}")
                assert isinstance(header, list) and len(header) == len(items)
                metas = [Sealed(t, i, n, ln, c) for (t, i, n), (ln, c) in zip(items, header, strict=True)]
                self._on_result(metas, payload)
        except BaseException as e:
            self._on_error(e)
            # Nobody reads this helper's replies any more: stop it, so that neither it (writing a
            # reply) nor the writer (sending it a batch) can block on a full pipe.
            self._proc.kill()

    def close(self, *, wait: bool = True) -> None:
        """End the helper: after all queued batches are sent and answered (``wait``) or at once."""
        with self._send_cond:
            self._closing = True
            if not wait:
                self._outbox.clear()
            self._send_cond.notify()
        if not wait:
            self._proc.kill()  # a send blocked on the full pipe fails now
        self._sender.join()
        helper.stop(self._proc, kill=not wait)
        self._thread.join()
        helper.reap(self._proc)


if __name__ == "__main__":
    helper.run(serve)
