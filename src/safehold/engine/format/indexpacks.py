"""The index's entries pack by pack as columns, and a pack header compared with them column by column.

check compares every pack's header with the index's entries for that pack. As objects (a
:class:`~safehold.engine.format.pack.PackedBlob` per entry on both sides and a set of their places) one
pack of small files (~84,000 blobs) cost ~50 MiB beside the index; as columns (:class:`PackColumns`,
:func:`same_places`) it costs a few MiB beside the header's decoded wire lists.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from safehold.engine.format.pack import PackedBlob

if TYPE_CHECKING:  # numpy is imported where it is first used (see index.preload)
    import numpy as np
    import numpy.typing as npt

#: ``PackedBlob`` from a tuple of its fields, in C.
_new_packed = functools.partial(tuple.__new__, PackedBlob)


class PackColumns(NamedTuple):
    """One pack's index entries by offset: ids ``(n, 32)``, offsets, lengths, raw lengths, flags (blob type
    in the low bits, "compressed" in bit 7)."""

    ids: npt.NDArray[np.uint8]
    offset: npt.NDArray[np.uint32]
    length: npt.NDArray[np.uint32]
    raw: npt.NDArray[np.uint32]
    flags: npt.NDArray[np.uint8]


def pack_groups(
    ids: npt.NDArray[np.uint8],
    offset: npt.NDArray[np.uint32],
    length: npt.NDArray[np.uint32],
    raws: npt.NDArray[np.uint32],
    flags: npt.NDArray[np.uint8],
    packnum: npt.NDArray[np.int64],
) -> Iterator[tuple[int, PackColumns]]:
    """(pack number, its entries by offset) for every pack number in ``packnum``, in pack number order; an
    entry that two index files name (same offset, same id) comes once."""
    import numpy as np

    order = np.lexsort((offset, packnum))  # by pack, then by offset
    if not len(order):
        return
    for group in np.split(order, np.flatnonzero(np.diff(packnum[order])) + 1):
        gids, goff = ids[group], offset[group]
        same = (goff[1:] == goff[:-1]) & (gids[1:] == gids[:-1]).all(axis=1)
        if same.any():
            group = group[np.concatenate(([True], ~same))]
            gids, goff = ids[group], offset[group]
        yield int(packnum[group[0]]), PackColumns(gids, goff, length[group], raws[group], flags[group])


def to_packed(cols: PackColumns) -> list[PackedBlob]:
    """The entries of ``cols`` as objects (built in C from the columns' lists)."""
    raw_ids = cols.ids.tobytes()
    fl = cols.flags
    return list(
        map(
            _new_packed,
            zip(
                (fl & 0x7F).tolist(),
                [raw_ids[i : i + 32] for i in range(0, len(raw_ids), 32)],
                cols.offset.tolist(),
                cols.length.tolist(),
                cols.raw.tolist(),
                ((fl & 0x80) != 0).tolist(),
                strict=True,
            ),
        )
    )


def from_packed(entries: list[PackedBlob]) -> PackColumns:
    """``entries`` as columns (a small index keeps its entries as objects; check wants columns)."""
    import numpy as np

    n = len(entries)
    return PackColumns(
        _id_matrix(b"".join(e.id for e in entries), n),
        np.fromiter((e.offset for e in entries), dtype=np.uint32, count=n),
        np.fromiter((e.length for e in entries), dtype=np.uint32, count=n),
        np.fromiter((e.raw_length for e in entries), dtype=np.uint32, count=n),
        np.fromiter((e.type | (0x80 if e.compressed else 0) for e in entries), dtype=np.uint8, count=n),
    )


def _id_matrix(joined: bytes, n: int) -> npt.NDArray[np.uint8]:
    import numpy as np

    return np.frombuffer(joined, dtype=np.uint8).reshape(n, 32)


Places = tuple[Any, Any, Any, Any]
"""(offsets, lengths, types, ids) of a set of entries, sorted and without repeats (see :func:`_places`)."""


def _places(
    types: npt.NDArray[Any], ids: npt.NDArray[np.uint8], offsets: npt.NDArray[Any], lengths: npt.NDArray[Any]
) -> Places:
    """The set of (type, id, offset, length) places as sorted columns, each place once: two sets are equal
    exactly when these columns are."""
    import numpy as np

    words = np.ascontiguousarray(ids).view(">u8")  # (n, 4): the id as four big-endian numbers
    order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0], types, lengths, offsets))
    o, ln, t, i = offsets[order], lengths[order], types[order], ids[order]
    if len(o) > 1:
        repeat = (o[1:] == o[:-1]) & (ln[1:] == ln[:-1]) & (t[1:] == t[:-1]) & (i[1:] == i[:-1]).all(axis=1)
        if repeat.any():
            keep = np.concatenate(([True], ~repeat))
            o, ln, t, i = o[keep], ln[keep], t[keep], i[keep]
    return o, ln, t, i


def same_places(wires: list[list[Any]], cols: PackColumns) -> bool:
    """Whether a pack header's checked wire lists (``pack.header_wires``) and the index's entries for that
    pack name the same set of (type, id, offset, length): what ``set(header) == set(index entries)`` of
    those four fields said, without an object per entry."""
    import numpy as np

    n = len(wires)
    if not n or not len(cols.offset):
        return n == len(cols.offset)
    # the header's values are checked already (types: blob types, ids: 32 bytes, 0 <= offset, 0 < length,
    # offset + length inside the pack): they fit these columns exactly (bool is int there, as in a set)
    header = _places(
        np.fromiter(map(operator.itemgetter(0), wires), dtype=np.uint8, count=n),
        _id_matrix(b"".join(map(operator.itemgetter(1), wires)), n),
        np.fromiter(map(operator.itemgetter(2), wires), dtype=np.int64, count=n),
        np.fromiter(map(operator.itemgetter(3), wires), dtype=np.int64, count=n),
    )
    index = _places(
        cols.flags & np.uint8(0x7F), cols.ids, cols.offset.astype(np.int64), cols.length.astype(np.int64)
    )
    return all(np.array_equal(a, b) for a, b in zip(header, index, strict=True))
