"""Proving blobs: decrypt, decompress, re-hash — one blob, a whole pack fed in parts, or packs in helper
processes.

:func:`decode_blob` is the one place that turns a stored blob back into its bytes (restore, check, copy,
``cat`` all go through it via :meth:`Repository.decode_blob`); nothing it returns is unverified.
:class:`PackProof` proves a pack the way ``check --read-data`` does: its SHA-256 against its name, its
header, then every blob. It takes the pack's tail (trailer and header, see :func:`read_tail`) first and
then all its bytes in order, in parts of any size, proving each blob as soon as its bytes are in: memory
is one part plus one blob, never a whole pack. :class:`VerifierProcess` runs a :class:`PackProof` in a
helper process (``python -m safehold.engine.format.blobproof``), so that checking a large repository uses every
core; it receives the repository's data key and blob-id key once, then per pack its tail, its parts and
an end marker, and answers the end with the findings.
"""

from __future__ import annotations

import gc
import hashlib
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING

import blake3
import zstandard

from safehold.engine import helper
from safehold.engine.format.crypto import SessionCache, blob_ad
from safehold.engine.format.pack import BLOB_TYPE_NAMES, TRAILER_LEN, PackedBlob, decode_header, parse_trailer
from safehold.engine.helper import HelperError, recv_frame, send_frame
from safehold.errors import IntegrityError, SafeholdError

if TYPE_CHECKING:
    from safehold.engine.format.index import BlobLocation

_OFFSET = operator.attrgetter("offset")


def decode_blob(
    sessions: SessionCache,
    id_key: bytes,
    dctx: zstandard.ZstdDecompressor,
    blob_id: bytes,
    loc: BlobLocation | PackedBlob,
    envelope: bytes,
    sealed: bytes | memoryview,
) -> bytes:
    """Decrypt, decompress and verify one blob; raises IntegrityError on any mismatch."""
    what = f"{BLOB_TYPE_NAMES.get(loc.type, '?')} blob {blob_id.hex()[:16]}"
    plain = sessions.for_envelope(envelope).open(sealed, blob_ad(loc.type, blob_id), what)
    if loc.compressed:
        try:
            plain = dctx.decompress(plain, max_output_size=loc.raw_length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what} does not decompress: {exc}") from None
    if len(plain) != loc.raw_length or blake3.blake3(plain, key=id_key, max_threads=1).digest() != blob_id:
        raise IntegrityError(f"{what} does not match its id")
    return plain


def read_tail(load: Callable[[int, int], bytes], size: int) -> bytes:
    """The trailer and header of a pack of ``size`` bytes, read with ``load(offset, length)``.

    When the trailer does not parse, just the trailer's bytes (or the whole of a shorter pack):
    :class:`PackProof` then reports the header unreadable.
    """
    if size <= TRAILER_LEN:
        return load(0, size) if size else b""
    trailer = load(size - TRAILER_LEN, TRAILER_LEN)
    try:
        _envelope, hlen = parse_trailer(trailer, size)
    except ValueError:
        return trailer
    return load(size - TRAILER_LEN - hlen, hlen) + trailer


class PackProof:
    """Proves pack ``name`` of ``size`` bytes from its ``tail`` (see :func:`read_tail`) and then every
    byte of it, in order, through :meth:`feed`; :meth:`finish` returns the findings."""

    def __init__(
        self,
        sessions: SessionCache,
        id_key: bytes,
        dctx: zstandard.ZstdDecompressor,
        name: str,
        size: int,
        tail: bytes | bytearray,
    ) -> None:
        self._sessions, self._id_key, self._dctx = sessions, id_key, dctx
        self.name, self.size = name, size
        self._hash = hashlib.sha256()
        self._pos = 0  # bytes fed so far
        self._held = bytearray()  # fed bytes from the start of the next blob not yet proven
        self._blob_errs: list[str] = []
        self._header_err: str | None = None
        self.proven = 0
        self._envelope = b""
        self._entries: list[PackedBlob] = []
        try:
            envelope, hlen = parse_trailer(bytes(tail[-TRAILER_LEN:]), size)
            if len(tail) < hlen + TRAILER_LEN:
                raise ValueError("pack header is incomplete")
            header_ct = bytes(tail[len(tail) - TRAILER_LEN - hlen : len(tail) - TRAILER_LEN])
            self._entries = sorted(decode_header(sessions, envelope, header_ct, size), key=_OFFSET)
            self._envelope = envelope
        except (ValueError, SafeholdError) as exc:
            self._header_err = f"pack {name[:16]}: header unreadable: {exc}"
        self._next = 0  # the first entry not yet proven

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next bytes of the pack (any length)."""
        self._hash.update(data)
        end = self._pos + len(data)
        self._pos = end
        if self._next >= len(self._entries):
            return
        if self._held:
            self._held += data
            view = memoryview(self._held)
        else:
            view = memoryview(data).cast("B")
        base = end - len(view)  # pack offset of view[0]
        entries = self._entries
        while self._next < len(entries) and entries[self._next].offset + entries[self._next].length <= end:
            e = entries[self._next]
            self._prove(e, view[e.offset - base : e.offset - base + e.length])
            self._next += 1
        keep = entries[self._next].offset - base if self._next < len(entries) else len(view)
        rest = bytearray(view[max(0, keep) :]) if keep < len(view) else bytearray()
        view.release()
        self._held = rest

    def _prove(self, e: PackedBlob, sealed: memoryview) -> None:
        try:
            decode_blob(self._sessions, self._id_key, self._dctx, e.id, e, self._envelope, sealed)
            self.proven += 1
        except IntegrityError as exc:
            kind = BLOB_TYPE_NAMES.get(e.type, "?")
            self._blob_errs.append(f"pack {self.name[:16]}: {kind} blob {e.id.hex()[:16]}: {exc}")

    def finish(self) -> tuple[list[str], int]:
        """Every finding about the pack, and how many blobs proved good."""
        errs: list[str] = []
        if self._pos != self.size or self._hash.hexdigest() != self.name:
            errs.append(f"pack {self.name[:16]}: content does not match its name (damaged)")
        if self._header_err is not None:
            errs.append(self._header_err)
        return errs + self._blob_errs, self.proven


class VerifierProcess(helper.Client):
    """A helper process that runs :class:`PackProof`; one caller thread at a time, one pack at a time:
    :meth:`start`, :meth:`feed` for every part, then :meth:`finish`."""

    def __init__(self, data_key: bytes, id_key: bytes) -> None:
        super().__init__("safehold.engine.format.blobproof", "checking", [data_key, id_key])

    def start(self, name: str, size: int, tail: bytes) -> None:
        self._send(["start", name, size], tail)

    def feed(self, data: bytes | memoryview) -> None:
        self._send(["part"], data)

    def finish(self) -> tuple[list[str], int]:
        """The findings about the pack, and how many blobs proved good."""
        self._send(["end"], b"")
        try:
            reply, _ = recv_frame(self._rfd)
        except (OSError, EOFError) as exc:
            raise self.exited() from exc
        if not (isinstance(reply, list) and len(reply) == 2):
            raise HelperError("a checking helper process answered something unexpected")
        errs, n = reply
        return [str(e) for e in errs], int(n)

    def _send(self, header: list[object], payload: bytes | memoryview) -> None:
        try:
            send_frame(self._wfd, header, [payload])
        except OSError as exc:
            raise self.exited() from exc


def serve(rfd: int, wfd: int) -> None:
    gc.disable()  # a pack header is ~100,000 acyclic objects, made per pack: nothing for the collector to find
    data_key, id_key = helper.recv_init(rfd, 2, "verifier")
    sessions = SessionCache(data_key)
    dctx = zstandard.ZstdDecompressor()
    proof: PackProof | None = None
    while True:
        try:
            req, payload = recv_frame(rfd)
        except EOFError:
            return
        if not isinstance(req, list) or not req:
            raise SystemExit("safehold verifier: malformed request")
        if req[0] == "start":
            proof = PackProof(sessions, id_key, dctx, str(req[1]), int(req[2]), payload)
        elif req[0] == "part" and proof is not None:
            proof.feed(payload)
        elif req[0] == "end" and proof is not None:
            send_frame(wfd, list(proof.finish()))
            proof = None
        else:
            raise SystemExit(f"safehold verifier: unexpected request {req[0]!r}")
        del payload


if __name__ == "__main__":
    helper.run(serve)
