"""Copying snapshots from one repository to another (off-site copies).

The target re-encrypts everything under its own keys and passphrases. When both repositories share
their deduplication secrets (the target was made with ``init --copy-chunker-params-from SOURCE``), blob
ids are identical: only blobs the target lacks are read from the source (pack by pack) and written,
and trees are copied unchanged. Otherwise every blob is read, named under the target's id key (the
chunk boundaries stay those of the source), and trees are rewritten with the new ids.

A snapshot already present in the target (same ``original`` id) is skipped, so a second copy transfers
nothing; a copy killed half-way and run again finds the blobs that arrived in the target's index and
does not send them again. Write order in the target is the usual one: packs, index, then snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from safehold.backends.base import FileType, Handle
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, decode_tree, encode_tree
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.restore.extractor import read_groups
from safehold.errors import IntegrityError


@dataclass
class CopyResult:
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: source snapshot id -> the id of its copy in the target
    ids: dict[str, str] = field(default_factory=dict)
    blobs_copied: int = 0
    bytes_copied: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class _Copier:
    def __init__(self, src: Repository, dst: Repository, writer: BlobWriter, progress: Progress) -> None:
        self.src = src
        self.dst = dst
        self.writer = writer
        self.progress = progress
        self.same_ids = src.config.id_key == dst.config.id_key
        self.tree_map: dict[bytes, bytes] = {}
        self.result_blobs = 0
        self.result_bytes = 0

    def _copy_data(self, ids: list[bytes]) -> dict[bytes, bytes]:
        """Ensure the target holds the data blobs ``ids``; return src id -> dst id."""
        mapping: dict[bytes, bytes] = {}
        wanted: dict[bytes, list[bytes]] = {}
        for bid in dict.fromkeys(ids):
            if self.same_ids and (self.dst.index.has(bid) or not self.writer.reserve(bid)):
                mapping[bid] = bid
                continue
            loc = self.src.index.lookup(bid)
            if loc is None:
                raise IntegrityError(f"source blob {bid.hex()[:16]} is missing from the source index")
            wanted.setdefault(loc.pack_id, []).append(bid)
        for pack_id, blobs in wanted.items():
            for bid, plain in self._read_pack_blobs(pack_id, blobs):
                if self.same_ids:
                    self.writer.submit(DATA, bid, plain)
                    mapping[bid] = bid
                else:
                    mapping[bid] = self.writer.save_blob(DATA, plain)
                self.result_blobs += 1
                self.result_bytes += len(plain)
                self.progress.advance(nbytes=len(plain))
        return mapping

    def _read_pack_blobs(self, pack_id: bytes, blobs: list[bytes]) -> list[tuple[bytes, bytes]]:
        located = []
        for bid, loc in zip(blobs, self.src.index.lookup_many(blobs), strict=True):
            if loc is None:
                raise IntegrityError(f"source blob {bid.hex()[:16]} is missing from the source index")
            located.append((loc.offset, loc.length, bid, loc))
        out: list[tuple[bytes, bytes]] = []
        h = Handle(FileType.DATA, pack_id.hex())
        for group in read_groups(located, None):
            base = group[0][0]
            data = memoryview(self.src.backend.load(h, base, group[-1][0] + group[-1][1] - base))
            for offset, length, bid, loc in group:
                sealed = data[offset - base : offset - base + length]
                out.append((bid, self.src.decode_blob(bid, loc, loc.envelope, sealed)))
        return out

    def copy_tree(self, tree_id: bytes) -> bytes:
        """Copy a tree and everything below it; return its id in the target."""
        done = self.tree_map.get(tree_id)
        if done is not None:
            return done
        nodes = decode_tree(self.src.load_blob(TREE, tree_id), tree_id)
        for n in nodes:
            if n.type == DIR and n.subtree is not None:
                n.subtree = self.copy_tree(n.subtree)
            elif n.type == FILE and n.content:
                mapping = self._copy_data(n.content)
                n.content = [mapping[b] for b in n.content]
            self.progress.advance(files=1)
        data = encode_tree(nodes)
        new_id = self.writer.save_blob(TREE, data)
        self.tree_map[tree_id] = new_id
        return new_id


def copy_snapshots(
    src: Repository,
    dst: Repository,
    refs: list[str] | None = None,
    *,
    progress: Progress | None = None,
    on_snapshot: Callable[[Snapshot, Snapshot], None] | None = None,
) -> CopyResult:
    """Copy the snapshots ``refs`` (all when None) from ``src`` to ``dst``."""
    progress = progress or NullProgress()
    result = CopyResult()
    src_lock = src.lock(exclusive=False, operation="copy (source)")
    try:
        dst_lock = dst.lock(exclusive=False, operation="copy")
        try:
            src.load_index()
            dst.load_index()
            wanted = [src.find_snapshot(r) for r in refs] if refs else src.snapshots()
            present = {s.original or s.id for s in dst.snapshots()}
            for snap in wanted:
                if snap.id in present or (snap.original and snap.original in present):
                    result.skipped.append(snap.id)
                    continue
                writer = BlobWriter(dst, check=dst_lock.check, confirm=dst_lock.confirm)
                try:
                    copier = _Copier(src, dst, writer, progress)
                    progress.start(f"copy {snap.short_id}")
                    root = copier.copy_tree(bytes.fromhex(snap.tree))
                    writer.flush()
                except BaseException:
                    writer.abort()
                    raise
                new = dataclasses.replace(snap, tree=root.hex(), original=snap.original or snap.id, id="")
                dst_lock.confirm()
                result.ids[snap.id] = dst.save_snapshot(new)
                progress.finish()
                result.copied.append(snap.id)
                result.blobs_copied += copier.result_blobs
                result.bytes_copied += copier.result_bytes
                if on_snapshot is not None:
                    on_snapshot(snap, new)
        finally:
            dst_lock.release()
    finally:
        src_lock.release()
    return result
