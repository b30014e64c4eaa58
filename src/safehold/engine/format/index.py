"""The index: which pack holds each blob, where, and how long it is.

On storage an index file (``index/<sha256>``) is an encrypted, zstd-compressed msgpack document listing
packs and their blobs (the same entries as the packs' own headers, so the index can always be rebuilt
from the packs). In memory, :class:`MasterIndex` keeps entries in sorted numpy arrays (57 bytes per
blob: 32-byte id, 8-byte search prefix, pack number, offset, length, raw length, flags) instead of a dict
of Python objects, plus a small dict of this session's unsaved entries that is folded into the arrays as
it grows. An index of at most :data:`_SMALL` entries is loaded into that dict alone, without numpy (its
import, ~0.1 s and ~17 MiB, would cost a small repository's command more than the arrays save).
"""

from __future__ import annotations

import functools
import io
import itertools
import operator
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import zstandard

from safehold.engine.format.indexfile import (
    INDEX_VERSION,
    IndexColumns,
    PackRecord,
    checked_entries,
    entry_columns,
    u32_checked,
)
from safehold.engine.format.indexpacks import PackColumns, from_packed, pack_groups, to_packed
from safehold.engine.format.pack import PackedBlob

if TYPE_CHECKING:  # numpy is imported where it is first used: see preload()
    import numpy as np
    import numpy.typing as npt

#: Entries added one pack at a time wait in a dict (~250 bytes each) until this many are folded into a
#: sorted segment (~60 bytes each).
_FOLD_AT = 8192
#: More segments than this are merged (a lookup searches each).
_MAX_SEGMENTS = 4
#: An index of at most this many entries (without a blob stored twice) is kept in the dict, without numpy.
_SMALL = 65536


class BlobLocation(NamedTuple):
    """Where a blob is (a named tuple: restore and check make one per blob)."""

    pack_id: bytes
    envelope: bytes
    type: int
    offset: int
    length: int
    raw_length: int
    compressed: bool


#: ``BlobLocation`` from a tuple of its fields, in C (``_make`` is a Python function).
_new_location = functools.partial(tuple.__new__, BlobLocation)


def preload() -> None:
    """Import numpy, which the index's arrays need, now: a caller with time to spare (while a key is
    derived in another thread) takes the ~0.1 s import off the way to its first index load. This
    module imports it only where it is used, so that opening a repository need not wait for it."""
    import numpy  # noqa: F401


_OFFSET = operator.attrgetter("offset")

#: Index entries decoded into Python objects at once while an index file is loaded.
_CHUNK = 65536


class _Segment:
    """Immutable sorted arrays of index entries."""

    __slots__ = ("flags", "ids", "length", "n", "offset", "pack", "prefix", "raw")

    def __init__(
        self,
        prefix: npt.NDArray[np.uint64],
        ids: npt.NDArray[np.uint8],
        pack: npt.NDArray[np.uint32],
        offset: npt.NDArray[np.uint32],
        length: npt.NDArray[np.uint32],
        raw: npt.NDArray[np.uint32],
        flags: npt.NDArray[np.uint8],
    ) -> None:
        import numpy as np

        order = np.argsort(prefix, kind="stable")
        self.prefix = prefix[order]
        self.ids = ids[order]
        self.pack = pack[order]
        self.offset = offset[order]
        self.length = length[order]
        self.raw = raw[order]
        self.flags = flags[order]
        self.n = len(prefix)

    @classmethod
    def build(cls, rows: list[tuple[bytes, int, int, int, int, int]]) -> _Segment:
        import numpy as np

        n = len(rows)
        ids = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.uint8).reshape(n, 32).copy()
        prefix = ids[:, :8].copy().view(">u8").reshape(n).astype(np.uint64)
        return cls(
            prefix,
            ids,
            np.fromiter((r[1] for r in rows), dtype=np.uint32, count=n),
            np.fromiter((r[2] for r in rows), dtype=np.uint32, count=n),
            np.fromiter((r[3] for r in rows), dtype=np.uint32, count=n),
            np.fromiter((r[4] for r in rows), dtype=np.uint32, count=n),
            np.fromiter((r[5] for r in rows), dtype=np.uint8, count=n),
        )

    @classmethod
    def merge(cls, segs: list[_Segment]) -> _Segment:
        """One segment of all of ``segs``, made column by column: at most one unsorted column exists at
        a time beside the old segments and the new one (not all seven: ~25 MiB less at 1M blobs)."""
        import numpy as np

        prefix = np.concatenate([s.prefix for s in segs])
        order = np.argsort(prefix, kind="stable")
        out = cls.__new__(cls)
        out.prefix, out.n = prefix[order], len(prefix)
        del prefix
        for col in ("ids", "pack", "offset", "length", "raw", "flags"):
            setattr(out, col, np.concatenate([getattr(s, col) for s in segs])[order])
        return out

    def find(self, blob_id: bytes, prefix: int) -> int:
        import numpy as np

        i = int(np.searchsorted(self.prefix, np.uint64(prefix)))
        while i < self.n and int(self.prefix[i]) == prefix:
            if self.ids[i].tobytes() == blob_id:
                return i
            i += 1
        return -1


def _flags(e: PackedBlob) -> int:
    return e.type | (0x80 if e.compressed else 0)


class MasterIndex:
    """All index entries known to this process. Thread-safe for concurrent lookups and additions."""

    def __init__(self) -> None:
        self._packs: list[bytes] = []
        self._envelopes: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._segments: list[_Segment] = []
        self._pending: dict[bytes, tuple[int, int, int, int, int]] = {}
        #: ``_pending`` is folded into a segment at this size (more after a small index was loaded into it)
        self._fold_at = _FOLD_AT
        self._lock = threading.Lock()

    def _pack_number(self, pack_id: bytes, envelope: bytes) -> int:
        n = self._pack_no.get(pack_id)
        if n is None:
            n = len(self._packs)
            self._packs.append(pack_id)
            self._envelopes.append(envelope)
            self._pack_no[pack_id] = n
        return n

    def add_packs(self, packs: Iterable[PackRecord]) -> None:
        """Add entries read from an index file or pack headers (bulk, folded into one segment)."""
        with self._lock:
            rows = [
                (e.id, self._pack_number(pid, env), e.offset, e.length, e.raw_length, _flags(e))
                for pid, env, entries in packs
                for e in entries
            ]
            if rows:
                self._add_segment(_Segment.build(rows))

    def add_index_file(self, data: bytes) -> None:
        """Add the entries of one (decrypted) index file, decoded column by column.

        The same checks as :func:`~safehold.engine.format.indexfile.decode_index` (every entry ``[type, 32-byte id, offset, length,
        raw length, compressed]`` with the right types and ranges), made over whole columns of up to
        ``_CHUNK`` entries read one after another: no Python object per entry survives, and at most one
        chunk of them exists at once, so loading costs about a microsecond per blob and the memory of
        the columns. Raises ``ValueError`` for anything malformed (then nothing of the file is added).
        A small index (see :data:`_SMALL`) goes into the dict instead, with the same checks.
        """
        doc = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
        del data
        # read from the document (fed, the unpacker would hold a second copy of it)
        up = msgpack.Unpacker(io.BytesIO(doc), raw=False, max_buffer_size=max(len(doc), 1 << 20))
        records: list[tuple[bytes, bytes]] = []
        counts: list[int] = []
        chunks: list[tuple[npt.NDArray[Any], ...]] = []
        flat: list[Any] = []
        try:
            if up.read_array_header() != 2 or up.unpack() != INDEX_VERSION:
                raise ValueError("index file has an unknown layout")
            for _ in range(up.read_array_header()):
                if up.read_array_header() != 3:
                    raise ValueError("index file has a malformed pack record")
                pid, env = up.unpack(), up.unpack()
                if not isinstance(pid, bytes) or len(pid) != 32 or not isinstance(env, bytes):
                    raise ValueError("index file names a malformed pack id")
                n = up.read_array_header()
                records.append((pid, env))
                counts.append(n)
                for _ in range(n):
                    flat.append(up.unpack())
                    if len(flat) == _CHUNK:
                        chunks.append(entry_columns(flat))
                        flat.clear()
            if up.tell() != len(doc):
                raise ValueError("index file has data after its end")
        except (msgpack.UnpackException, StopIteration) as exc:
            raise ValueError(f"index file does not decode: {exc}") from None
        if not chunks and self._add_small(flat, records, counts):
            return
        if flat:
            chunks.append(entry_columns(flat))
        if not chunks:
            return
        import numpy as np

        ids, offset, length, raw, flags = (np.concatenate(col) for col in zip(*chunks, strict=True))
        del doc, up
        chunks.clear()
        n = len(ids)
        with self._lock:
            # A pack record without entries names no blob: like add_packs, it gets no pack number.
            numbers = np.array(
                [
                    self._pack_number(pid, env) if n else 0
                    for (pid, env), n in zip(records, counts, strict=True)
                ],
                dtype=np.uint32,
            )
            pack = np.repeat(numbers, counts)
            prefix = ids[:, :8].copy().view(">u8").reshape(n).astype(np.uint64)
            self._add_segment(_Segment(prefix, ids, pack, offset, length, raw, flags))

    def _add_small(self, flat: list[Any], records: list[tuple[bytes, bytes]], counts: list[int]) -> bool:
        """Add the entries of an index file to the dict when the index stays small (no segment yet, at
        most :data:`_SMALL` entries, no id twice: the arrays keep every copy of a blob stored twice,
        which a dict cannot); False (nothing added) otherwise. Raises ValueError like :func:`_columns`."""
        if not flat:
            return True
        if self._segments or len(self._pending) + len(flat) > _SMALL:
            return False
        types, ids, offsets, lengths, raws, compressed = checked_entries(flat)
        u32_checked(offsets, "offset")
        u32_checked(lengths, "length")
        u32_checked(raws, "raw length")
        with self._lock:
            if self._segments or len(set(ids)) != len(ids) or not self._pending.keys().isdisjoint(ids):
                return False
            rows = iter(zip(ids, offsets, lengths, raws, types, compressed, strict=True))
            for (pid, env), n in zip(records, counts, strict=True):
                if not n:
                    continue
                pn = self._pack_number(pid, env)
                for blob_id, off, ln, raw, t, c in itertools.islice(rows, n):
                    self._pending[blob_id] = (pn, off, ln, raw, t | (0x80 if c else 0))
            self._fold_at = _FOLD_AT + len(self._pending)
        return True

    def add_pack(self, pack_id: bytes, envelope: bytes, entries: list[PackedBlob]) -> None:
        """Add the entries of a pack this session just wrote."""
        with self._lock:
            n = self._pack_number(pack_id, envelope)
            for e in entries:
                self._pending[e.id] = (n, e.offset, e.length, e.raw_length, _flags(e))
            if len(self._pending) >= self._fold_at:
                self._fold()

    def _fold(self) -> None:
        rows = [(k, *v) for k, v in self._pending.items()]
        self._pending.clear()
        self._fold_at = _FOLD_AT
        self._add_segment(_Segment.build(rows))

    def _add_segment(self, seg: _Segment) -> None:
        self._segments.append(seg)
        if len(self._segments) > _MAX_SEGMENTS:
            # Merge the recent small segments; the large first one (the loaded index) only once they
            # together outgrow it, so that adding n entries to an index of N costs O(n log N), not O(n N).
            base, recent = self._segments[0], _Segment.merge(self._segments[1:])
            self._segments = [base, recent] if recent.n < base.n else [_Segment.merge([base, recent])]

    def compact(self) -> None:
        """Fold everything into one segment (after loading); a small index stays in the dict."""
        with self._lock:
            if self._pending and self._segments:
                self._fold()
            if len(self._segments) > 1:
                self._segments = [_Segment.merge(self._segments)]

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        p = self._pending.get(blob_id)
        if p is not None:
            n, off, ln, raw, fl = p
            return BlobLocation(self._packs[n], self._envelopes[n], fl & 0x7F, off, ln, raw, bool(fl & 0x80))
        prefix = int.from_bytes(blob_id[:8], "big")
        for seg in self._segments:
            i = seg.find(blob_id, prefix)
            if i >= 0:
                fl = int(seg.flags[i])
                pn = int(seg.pack[i])
                return BlobLocation(
                    self._packs[pn],
                    self._envelopes[pn],
                    fl & 0x7F,
                    int(seg.offset[i]),
                    int(seg.length[i]),
                    int(seg.raw[i]),
                    bool(fl & 0x80),
                )
        return None

    def lookup_many(self, blob_ids: list[bytes]) -> list[BlobLocation | None]:
        """:meth:`lookup` for many ids at once (vectorised: what a restore plan or a folder needs)."""
        out: list[BlobLocation | None] = [None] * len(blob_ids)
        todo: list[int] | range = range(len(blob_ids))
        if self._pending:
            todo = []
            for k, blob_id in enumerate(blob_ids):
                if blob_id in self._pending:
                    out[k] = self.lookup(blob_id)
                else:
                    todo.append(k)
        if not todo or not self._segments:
            return out
        import numpy as np

        joined = b"".join(blob_ids) if isinstance(todo, range) else b"".join(blob_ids[k] for k in todo)
        ids = np.frombuffer(joined, dtype=np.uint8).reshape(len(todo), 32)
        prefix = ids[:, :8].copy().view(">u8").reshape(len(todo)).astype(np.uint64)
        missing = np.ones(len(todo), dtype=bool)
        for seg in self._segments:
            pos = np.minimum(np.searchsorted(seg.prefix, prefix), seg.n - 1)
            hit = missing & (seg.prefix[pos] == prefix) & (seg.ids[pos] == ids).all(axis=1)
            rows = np.flatnonzero(hit)
            at = pos[rows]
            pns = seg.pack[at].tolist()
            fl = seg.flags[at]
            locs = map(
                _new_location,
                zip(
                    map(self._packs.__getitem__, pns),
                    map(self._envelopes.__getitem__, pns),
                    (fl & 0x7F).tolist(),
                    seg.offset[at].tolist(),
                    seg.length[at].tolist(),
                    seg.raw[at].tolist(),
                    ((fl & 0x80) != 0).tolist(),
                    strict=True,
                ),
            )
            for r, loc in zip(rows.tolist(), locs, strict=True):
                out[todo[r]] = loc
            missing &= ~hit
        # Ids whose 64-bit prefix another id shares may sit after the first match: look those up one by one.
        for r in np.flatnonzero(missing).tolist():
            out[todo[r]] = self.lookup(blob_ids[todo[r]])
        return out

    def has(self, blob_id: bytes) -> bool:
        if blob_id in self._pending:
            return True
        prefix = int.from_bytes(blob_id[:8], "big")
        return any(seg.find(blob_id, prefix) >= 0 for seg in self._segments)

    def has_many(self, blob_ids: list[bytes]) -> list[bool]:
        """:meth:`has` for many ids at once: one vectorised search per segment instead of one per id
        (what a backup of small files asks for every batch of blobs)."""
        out = [b in self._pending for b in blob_ids]
        todo = [k for k, hit in enumerate(out) if not hit]
        segs = [seg for seg in self._segments if seg.n]
        if not todo or not segs:
            return out
        import numpy as np

        ids = np.frombuffer(b"".join(blob_ids[k] for k in todo), dtype=np.uint8).reshape(len(todo), 32)
        prefix = ids[:, :8].copy().view(">u8").reshape(len(todo)).astype(np.uint64)
        found = np.zeros(len(todo), dtype=bool)
        shared = np.zeros(len(todo), dtype=bool)
        for seg in segs:
            pos = np.minimum(np.searchsorted(seg.prefix, prefix), seg.n - 1)
            same_prefix = seg.prefix[pos] == prefix
            hit = same_prefix & (seg.ids[pos] == ids).all(axis=1)
            found |= hit
            shared |= same_prefix & ~hit
        for r, k in enumerate(todo):
            if found[r]:
                out[k] = True
        # An id whose 64-bit prefix another id shares may sit after the first match: look it up alone.
        for r in np.flatnonzero(shared & ~found).tolist():
            out[todo[r]] = self.has(blob_ids[todo[r]])
        return out

    def __len__(self) -> int:
        return len(self._pending) + sum(s.n for s in self._segments)

    def iter_packs(self) -> Iterator[tuple[bytes, list[PackedBlob]]]:
        """Every pack with entries and its entries by offset (for check and rebuild), one pack at a time:
        only one pack's entries exist as objects at once. Duplicates across index files come once."""
        small, groups = self._pack_groups()
        if small is not None:
            yield from small
        for pid, cols in groups:
            yield pid, to_packed(cols)

    def iter_pack_columns(self) -> Iterator[tuple[bytes, PackColumns]]:
        """:meth:`iter_packs` with each pack's entries as columns (no object per entry: what check
        compares pack headers with)."""
        small, groups = self._pack_groups()
        if small is not None:
            for pid, entries in small:
                yield pid, from_packed(entries)
        yield from groups

    def _pack_groups(
        self,
    ) -> tuple[list[tuple[bytes, list[PackedBlob]]] | None, Iterator[tuple[bytes, PackColumns]]]:
        """A small index's packs as objects (else None), and the segments' packs as columns."""
        with self._lock:
            if not self._segments:  # a small index: all in the dict
                by_pack: dict[int, list[PackedBlob]] = {}
                for blob_id, (pn, off, ln, raw, fl) in self._pending.items():
                    by_pack.setdefault(pn, []).append(
                        PackedBlob(fl & 0x7F, blob_id, off, ln, raw, bool(fl & 0x80))
                    )
                small = [(self._packs[pn], sorted(by_pack[pn], key=_OFFSET)) for pn in sorted(by_pack)]
                return small, iter(())
            if self._pending:
                self._fold()
            segs = list(self._segments)
        return None, self._segment_groups(segs)

    def _segment_groups(self, segs: list[_Segment]) -> Iterator[tuple[bytes, PackColumns]]:
        import numpy as np

        def joined(col: str) -> npt.NDArray[Any]:
            arrays = [getattr(seg, col) for seg in segs]
            return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

        ids, offset, length, raws, flags = (joined(c) for c in ("ids", "offset", "length", "raw", "flags"))
        for pn, cols in pack_groups(ids, offset, length, raws, flags, joined("pack").astype(np.int64)):
            yield self._packs[pn], cols

    def columns(self) -> IndexColumns:
        """Every entry as sorted columns (folding everything into one segment first); the arrays are this
        index's own, not copies: read them, never change them."""
        return _columns_of(self)

    def pack_ids(self) -> set[bytes]:
        """The packs that index entries name."""
        with self._lock:
            if not self._segments:  # a small index: all in the dict
                return {self._packs[v[0]] for v in self._pending.values()}
            import numpy as np

            if self._pending:
                self._fold()
            return {self._packs[n] for seg in self._segments for n in np.unique(seg.pack).tolist()}


def _columns_of(index: MasterIndex) -> IndexColumns:
    import numpy as np

    with index._lock:
        if index._pending:
            index._fold()
        if len(index._segments) > 1:
            index._segments = [_Segment.merge(index._segments)]
        packs, envelopes = list(index._packs), list(index._envelopes)
        if index._segments:
            s = index._segments[0]
            return IndexColumns(s.prefix, s.ids, s.pack, s.offset, s.length, s.raw, s.flags, packs, envelopes)
    empty32 = np.zeros(0, dtype=np.uint32)
    return IndexColumns(
        np.zeros(0, dtype=np.uint64),
        np.zeros((0, 32), dtype=np.uint8),
        empty32,
        empty32,
        empty32,
        empty32,
        np.zeros(0, dtype=np.uint8),
        packs,
        envelopes,
    )
