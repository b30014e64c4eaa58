"""Proving blobs: decrypt, decompress, re-hash — one blob, a whole pack, or packs in helper processes.

:func:`decode_blob` is the one place that turns a stored blob back into its bytes (restore, check, copy,
``cat`` all go through it via :meth:`Repository.decode_blob`); nothing it returns is unverified.
:func:`verify_pack` reads a whole pack the way ``check --read-data`` does: its SHA-256 against its name,
its header, then every blob. :class:`VerifierProcess` runs :func:`verify_pack` in a helper process
(``python -m safehold.engine.verifier``), so that checking a large repository uses every core; it
receives the repository's data key and blob-id key once, then one pack per request, and answers with
the findings.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import blake3
import zstandard

from safehold.engine import helper
from safehold.engine.crypto import SessionCache, blob_ad
from safehold.engine.helper import HelperError, recv_frame, send_frame
from safehold.engine.pack import BLOB_TYPE_NAMES, TRAILER_LEN, PackedBlob, decode_header, parse_trailer
from safehold.errors import IntegrityError, SafeholdError

if TYPE_CHECKING:
    from safehold.engine.index import BlobLocation


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


def verify_pack(
    sessions: SessionCache,
    id_key: bytes,
    dctx: zstandard.ZstdDecompressor,
    name: str,
    data: bytes | bytearray,
) -> tuple[list[str], int]:
    """Every finding about pack ``name`` whose bytes are ``data``, and how many blobs proved good."""
    errs: list[str] = []
    if hashlib.sha256(data).hexdigest() != name:
        errs.append(f"pack {name[:16]}: content does not match its name (damaged)")
    try:
        envelope, hlen = parse_trailer(bytes(data[-TRAILER_LEN:]), len(data))
        header_ct = bytes(data[len(data) - TRAILER_LEN - hlen : len(data) - TRAILER_LEN])
        header = decode_header(sessions, envelope, header_ct, len(data))
    except (ValueError, SafeholdError) as exc:
        return [*errs, f"pack {name[:16]}: header unreadable: {exc}"], 0
    mv = memoryview(data)
    n = 0
    for e in header:
        try:
            decode_blob(sessions, id_key, dctx, e.id, e, envelope, mv[e.offset : e.offset + e.length])
            n += 1
        except IntegrityError as exc:
            errs.append(f"pack {name[:16]}: {BLOB_TYPE_NAMES.get(e.type, '?')} blob {e.id.hex()[:16]}: {exc}")
    return errs, n


class VerifierProcess:
    """A helper process that runs :func:`verify_pack`; one caller thread at a time."""

    def __init__(self, data_key: bytes, id_key: bytes) -> None:
        self._proc, self._wfd, self._rfd = helper.spawn("safehold.engine.verifier")
        send_frame(self._wfd, [data_key, id_key])

    def send(self, name: str, data: bytes) -> None:
        """Hand pack ``name`` to the helper (the caller may drop ``data`` now); then :meth:`receive`."""
        try:
            send_frame(self._wfd, [name], [data])
        except OSError as exc:
            raise self._exited() from exc

    def receive(self) -> tuple[list[str], int]:
        """The findings about the pack sent last, and how many blobs proved good."""
        try:
            reply, _ = recv_frame(self._rfd)
        except (OSError, EOFError) as exc:
            raise self._exited() from exc
        if not (isinstance(reply, list) and len(reply) == 2):
            raise HelperError("a checking helper process answered something unexpected")
        errs, n = reply
        return [str(e) for e in errs], int(n)

    def _exited(self) -> HelperError:
        return HelperError(f"a checking helper process exited unexpectedly (exit code {self._proc.poll()})")

    def close(self) -> None:
        helper.stop(self._proc)
        helper.reap(self._proc)


def serve(rfd: int, wfd: int) -> None:
    header, _ = recv_frame(rfd)
    if not (isinstance(header, list) and len(header) == 2):
        raise SystemExit("safehold verifier: expected an init frame")
    data_key, id_key = header
    sessions = SessionCache(data_key)
    dctx = zstandard.ZstdDecompressor()

    def handle(req: object, payload: bytearray) -> object:
        assert isinstance(req, list)
        errs, n = verify_pack(sessions, id_key, dctx, str(req[0]), payload)
        return [errs, n]

    helper.serve_requests(rfd, wfd, handle)


if __name__ == "__main__":
    helper.run(serve)
