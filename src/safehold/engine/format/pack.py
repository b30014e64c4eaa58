"""Packs: many encrypted blobs in one file, described by an encrypted header at its end.

Layout::

    blob ciphertext 0 | ... | blob ciphertext n | header ciphertext | envelope | u32 header length | b"SHP1"

The header (msgpack, then sealed under the pack's session with associated data ``b"pack-header"``) lists
each blob as ``[type, id, offset, length, raw_length, compressed]``. The envelope says which session key
sealed the pack (see :mod:`safehold.engine.format.crypto`). A pack's file name is the SHA-256 of all its bytes.
"""

from __future__ import annotations

import functools
import operator
import struct
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack

from safehold.backends.spool import Spool
from safehold.engine.format.crypto import SESSION_ID_LEN, Session, SessionCache
from safehold.engine.format.sealer import Sealed

PACK_MAGIC = b"SHP1"
ENVELOPE_LEN = 1 + SESSION_ID_LEN
TRAILER_LEN = ENVELOPE_LEN + 4 + len(PACK_MAGIC)
HEADER_AD = b"pack-header"

DATA = 0
TREE = 1
BLOB_TYPE_NAMES = {DATA: "data", TREE: "tree"}
_BLOB_TYPE_SET = frozenset(BLOB_TYPE_NAMES)
#: What ``isinstance(x, int)`` accepts from msgpack (``from_wire``'s test).
_INT_TYPES = {int, bool}


class PackedBlob(NamedTuple):
    """Where one blob lives inside a pack. A named tuple, not a frozen dataclass: check and restore
    create one per blob, and a frozen dataclass's ``__init__`` costs several times a tuple's."""

    type: int
    id: bytes
    offset: int
    length: int
    raw_length: int
    compressed: bool

    def to_wire(self) -> list[object]:
        return [self.type, self.id, self.offset, self.length, self.raw_length, self.compressed]

    @classmethod
    def from_wire(cls, w: list[object]) -> PackedBlob:
        t, i, o, ln, raw, c = w
        if not (
            isinstance(t, int)
            and t in BLOB_TYPE_NAMES
            and isinstance(i, bytes)
            and len(i) == 32
            and isinstance(o, int)
            and isinstance(ln, int)
            and isinstance(raw, int)
            and isinstance(c, bool)
        ):
            raise ValueError("malformed pack header entry")
        return cls(t, i, o, ln, raw, c)


class PackBuilder:
    """Appends sealed blobs of one type to a spool; :meth:`finish` adds the header and returns the pack id.

    The bytes go straight to the spool (a file, see :mod:`safehold.backends.spool`): a pack waiting to
    be filled or uploaded costs no resident memory.
    """

    def __init__(self, blob_type: int, spool: Spool) -> None:
        self.blob_type = blob_type
        self.spool = spool
        self.entries: list[PackedBlob] = []
        self.lock = threading.Lock()  # held by whoever appends; the writer picks packs under its own
        self.closed = False  # full (or flushed): no more blobs

    def __len__(self) -> int:
        return self.spool.size

    def add(self, blobs: Sequence[Sealed], payload: bytes | bytearray | memoryview) -> None:
        """Append sealed blobs whose ciphertexts lie back to back in ``payload``."""
        offset = self.spool.size
        for b in blobs:
            self.entries.append(
                PackedBlob(self.blob_type, b.id, offset, b.length, b.raw_length, b.compressed)
            )
            offset += b.length
        if offset - self.spool.size != len(payload):
            raise ValueError("sealed blob lengths do not add up to the payload")
        self.spool.write(payload)

    def finish(self, session: Session) -> bytes:
        """Append the sealed header and the trailer; return the pack id (SHA-256 of all its bytes)."""
        packer = msgpack.Packer(use_bin_type=True, autoreset=False)
        pack_entries(packer, self.entries)
        header_ct = session.seal(packer.bytes(), HEADER_AD)
        self.spool.write(header_ct + session.envelope + struct.pack(">I", len(header_ct)) + PACK_MAGIC)
        return self.spool.digest()


#: ``PackedBlob`` from a sequence of its fields, in C (``_make`` is a Python function).
_new_packed = functools.partial(tuple.__new__, PackedBlob)


def pack_entries(packer: msgpack.Packer, entries: Sequence[PackedBlob]) -> None:
    """Append ``entries`` as a msgpack array of their wire forms, one at a time (a list of thousands of
    wire lists would cost megabytes for a moment)."""
    packer.pack_array_header(len(entries))
    for e in entries:
        packer.pack(e.to_wire())


def parse_trailer(tail: bytes, pack_size: int) -> tuple[bytes, int]:
    """From the last TRAILER_LEN bytes of a pack, return ``(envelope, header length)``."""
    if len(tail) != TRAILER_LEN or tail[-4:] != PACK_MAGIC:
        raise ValueError("pack trailer is missing or damaged")
    envelope = tail[:ENVELOPE_LEN]
    (hlen,) = struct.unpack(">I", tail[ENVELOPE_LEN : ENVELOPE_LEN + 4])
    if hlen <= 0 or hlen + TRAILER_LEN > pack_size:
        raise ValueError("pack header length is out of range")
    return envelope, hlen


def decode_header(
    sessions: SessionCache, envelope: bytes, header_ct: bytes, pack_size: int
) -> list[PackedBlob]:
    """Decrypt and validate a pack header; every entry must lie inside the pack's blob area.

    Entries are checked column by column (C loops over the header, which lists ~100,000 blobs in a pack
    of small files), as strictly as :meth:`PackedBlob.from_wire` checks one."""
    return list(map(_new_packed, header_wires(sessions, envelope, header_ct, pack_size)))


def header_wires(
    sessions: SessionCache, envelope: bytes, header_ct: bytes, pack_size: int
) -> list[list[Any]]:
    """:func:`decode_header`'s entries as their checked wire lists ``[type, id, offset, length, raw length,
    compressed]`` (no :class:`PackedBlob` per entry: what check turns into columns)."""
    plain = sessions.for_envelope(envelope).open(header_ct, HEADER_AD, "pack header")
    raw = msgpack.unpackb(plain, raw=False)
    if not isinstance(raw, list):
        raise ValueError("pack header is not a list")
    if not raw:
        return []
    if set(map(type, raw)) != {list} or set(map(len, raw)) != {6}:
        raise ValueError("malformed pack header entry")
    types, ids, offsets, lengths, raws, compressed = zip(*raw, strict=True)
    if not (
        set(map(type, types)) <= _INT_TYPES
        and set(types) <= _BLOB_TYPE_SET
        and set(map(type, ids)) == {bytes}
        and set(map(len, ids)) == {32}
        and set(map(type, offsets)) <= _INT_TYPES
        and set(map(type, lengths)) <= _INT_TYPES
        and set(map(type, raws)) <= _INT_TYPES
        and set(map(type, compressed)) == {bool}
    ):
        raise ValueError("malformed pack header entry")
    limit = pack_size - TRAILER_LEN - len(header_ct)
    if min(offsets) < 0 or min(lengths) <= 0 or max(map(operator.add, offsets, lengths)) > limit:
        raise ValueError("pack header entry points outside the pack")
    return raw
