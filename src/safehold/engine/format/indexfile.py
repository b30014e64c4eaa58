"""Index files: their encoding, and the column checks that loading one applies to its entries.

An index file (``index/<sha256>``) is an encrypted, zstd-compressed msgpack document listing packs and
their blobs: ``[INDEX_VERSION, [[pack id, envelope, [entry wire, ...]], ...]]``, each entry as a pack
header lists it. :func:`encode_index` writes one, :func:`decode_index` reads one into objects (for tools);
:class:`~safehold.engine.format.index.MasterIndex` loads them for use, chunk by chunk, through
:func:`checked_entries` and :func:`entry_columns`. :class:`IndexColumns` is every entry of a loaded index
as columns (what prune marks and counts over).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import zstandard

from safehold.engine.format.pack import BLOB_TYPE_NAMES, PackedBlob, pack_entries

if TYPE_CHECKING:  # numpy is imported where it is first used (see index.preload)
    import numpy as np
    import numpy.typing as npt

INDEX_VERSION = 1
BLOB_TYPES = frozenset(BLOB_TYPE_NAMES)


PackRecord = tuple[bytes, bytes, list[PackedBlob]]
"""One pack as the index records it: (pack id, key envelope, blobs)."""


def encode_index(packs: list[PackRecord]) -> bytes:
    """``[INDEX_VERSION, [[pack id, envelope, [entry wire, ...]], ...]]`` in msgpack, zstd-compressed.

    Packed entry by entry (see :func:`~safehold.engine.format.pack.pack_entries`) into one buffer that is
    compressed with one call.
    """
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack_array_header(2)
    packer.pack(INDEX_VERSION)
    packer.pack_array_header(len(packs))
    for pid, env, entries in packs:
        packer.pack_array_header(3)
        packer.pack(pid)
        packer.pack(env)
        pack_entries(packer, entries)
    doc = packer.getbuffer()
    try:
        return zstandard.ZstdCompressor(level=3).compress(doc)
    finally:
        doc.release()


def decode_index(data: bytes) -> list[PackRecord]:
    """Every pack record of an index file as objects (for tools that show or copy them; loading the index
    for use goes through :meth:`MasterIndex.add_index_file`)."""
    out: list[PackRecord] = []
    records: list[Any] = _unpack_index(data)
    for pid, env, entries in records:
        if not isinstance(pid, bytes) or len(pid) != 32 or not isinstance(env, bytes):
            raise ValueError("index file names a malformed pack id")
        out.append((pid, env, [PackedBlob.from_wire(w) for w in entries]))
    return out


def _unpack_index(data: bytes) -> list[Any]:
    raw = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31), raw=False)
    if not isinstance(raw, list) or len(raw) != 2 or raw[0] != INDEX_VERSION or not isinstance(raw[1], list):
        raise ValueError("index file has an unknown layout")
    return raw[1]


_U32 = 1 << 32


def _u32_column(values: tuple[object, ...], what: str) -> npt.NDArray[np.uint32]:
    import numpy as np

    if not set(map(type, values)) <= {int}:
        raise ValueError(f"index entry has a malformed {what}")
    try:
        col = np.array(values, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"index entry has an out-of-range {what}") from None
    if len(col) and (int(col.min()) < 0 or int(col.max()) >= _U32):
        raise ValueError(f"index entry has an out-of-range {what}")
    return col.astype(np.uint32)


def checked_entries(flat: list[Any]) -> tuple[tuple[Any, ...], ...]:
    """(types, ids, offsets, lengths, raw lengths, compressed) of index entries, each checked by column
    but for the ranges of the last three (:func:`_u32_column`, :func:`u32_checked`)."""
    if set(map(type, flat)) != {list} or set(map(len, flat)) != {6}:
        raise ValueError("malformed pack header entry")
    types, ids, offsets, lengths, raws, compressed = zip(*flat, strict=True)
    if not set(map(type, types)) <= {int} or not set(types) <= BLOB_TYPES:
        raise ValueError("malformed pack header entry")
    if set(map(type, ids)) != {bytes} or set(map(len, ids)) != {32}:
        raise ValueError("malformed pack header entry")
    if not set(map(type, compressed)) <= {bool}:
        raise ValueError("malformed pack header entry")
    return types, ids, offsets, lengths, raws, compressed


def u32_checked(values: tuple[Any, ...], what: str) -> None:
    """:func:`_u32_column`'s checks, without numpy."""
    if not set(map(type, values)) <= {int}:
        raise ValueError(f"index entry has a malformed {what}")
    if values and (min(values) < 0 or max(values) >= _U32):
        raise ValueError(f"index entry has an out-of-range {what}")


def entry_columns(flat: list[Any]) -> tuple[npt.NDArray[Any], ...]:
    """(ids, offset, length, raw length, flags) of index entries, each entry checked by column."""
    import numpy as np

    types, ids, offsets, lengths, raws, compressed = checked_entries(flat)
    id_arr = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(flat), 32).copy()
    flags = np.array(types, dtype=np.uint8) | (np.array(compressed, dtype=np.uint8) << np.uint8(7))
    return (
        id_arr,
        _u32_column(offsets, "offset"),
        _u32_column(lengths, "length"),
        _u32_column(raws, "raw length"),
        flags,
    )


class IndexColumns(NamedTuple):
    """Every entry of an index as columns, sorted by id prefix (:meth:`MasterIndex.columns`): what prune
    marks and counts over without making an object per blob. ``pack`` numbers index ``packs`` and
    ``envelopes``; ``flags`` holds the blob type in its low bits and "compressed" in bit 7."""

    prefix: npt.NDArray[np.uint64]
    ids: npt.NDArray[np.uint8]
    pack: npt.NDArray[np.uint32]
    offset: npt.NDArray[np.uint32]
    length: npt.NDArray[np.uint32]
    raw: npt.NDArray[np.uint32]
    flags: npt.NDArray[np.uint8]
    packs: list[bytes]
    envelopes: list[bytes]

    @property
    def rows(self) -> int:
        return len(self.prefix)

    def find(self, ids: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """Row of each id (an ``(n, 32)`` array) in these columns, -1 where absent. Where an id is stored
        more than once, the first of its rows (they are adjacent)."""
        import numpy as np

        n = len(ids)
        out = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self.prefix) == 0:
            return out
        prefix = ids[:, :8].copy().view(">u8").reshape(n).astype(np.uint64)
        pos = np.searchsorted(self.prefix, prefix)
        at = np.minimum(pos, len(self.prefix) - 1)
        hit = (self.prefix[at] == prefix) & (self.ids[at] == ids).all(axis=1)
        out[hit] = at[hit]
        # another id with the same 64-bit prefix may come first: look further along that prefix's run
        for k in np.flatnonzero(~hit & (self.prefix[at] == prefix)).tolist():
            i = int(at[k]) + 1
            while i < len(self.prefix) and self.prefix[i] == prefix[k]:
                if (self.ids[i] == ids[k]).all():
                    out[k] = i
                    break
                i += 1
        return out

    def blob_type(self) -> npt.NDArray[np.uint8]:
        import numpy as np

        return self.flags & np.uint8(0x7F)
