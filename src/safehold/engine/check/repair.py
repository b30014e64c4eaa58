"""Repairs: rebuild the index from the packs' own headers; rewrite snapshots without what is lost.

**Index.** Every pack carries an encrypted header listing its blobs (the same entries as the index), so
the index can always be rebuilt: :func:`rebuild_index` reads every pack's header once (``workers`` at a
time, two ranged reads each), writes new index files of up to ``INDEX_ENTRIES`` entries as it goes (only
one file's entries exist as objects at once), and only then removes the index files that were there
before. Killed half-way, the old files are still in place and the new ones only add duplicates. A pack
whose header cannot be read is named and left alone (its blobs are then missing from the index; ``repair
snapshots`` deals with the snapshots that need them).

**Snapshots.** :func:`repair_snapshot` walks a snapshot's trees; a file with a blob that is missing from
the index (or, with ``read_data``, that does not read back intact) is left out, a folder whose tree is
missing or damaged is left out whole, and every tree above a change is written anew. The repaired snapshot
keeps everything else (time, host, profile, components) and gets the tag ``repaired`` and a line per loss
in ``errors``; the original snapshot stays unless the caller removes it. Both run under an exclusive lock
held by the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from safehold.backends.base import FileType, Handle
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.indexfile import PackRecord, encode_index
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, Node, decode_tree, encode_tree
from safehold.engine.progress import NullProgress, Progress
from safehold.errors import NotFoundError, SafeholdError

INDEX_ENTRIES = 100_000
REPAIRED_TAG = "repaired"


@dataclass
class IndexRepair:
    packs: int = 0
    blobs: int = 0
    index_written: int = 0
    index_removed: int = 0
    #: packs whose header could not be read: not in the new index
    unreadable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _headers(
    repo: Repository, packs: list[tuple[str, int]], workers: int
) -> Iterator[tuple[str, PackRecord | str]]:
    """Each pack's record from its header, or the reason it could not be read; ``workers`` at a time."""

    def read(name: str, size: int) -> PackRecord | str:
        try:
            envelope, entries = repo.read_pack_header(name, size)
        except SafeholdError as exc:
            return str(exc)
        return (bytes.fromhex(name), envelope, entries)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="safehold-repair") as pool:
        window: list[tuple[str, Future[PackRecord | str]]] = []
        todo = iter(packs)
        for name, size in todo:
            window.append((name, pool.submit(read, name, size)))
            if len(window) >= 4 * workers:
                n, fut = window.pop(0)
                yield n, fut.result()
        for n, fut in window:
            yield n, fut.result()


def rebuild_index(
    repo: Repository,
    *,
    confirm: Callable[[], None],
    check: Callable[[], None],
    progress: Progress | None = None,
    workers: int = 4,
) -> IndexRepair:
    """Replace every index file by index files rebuilt from the packs' headers (see the module docstring)."""
    progress = progress or NullProgress()
    out = IndexRepair()
    old = [fi.name for fi in repo.backend.list(FileType.INDEX)]
    packs = sorted((fi.name, fi.size) for fi in repo.backend.list(FileType.DATA))
    records: list[PackRecord] = []
    entries = 0
    progress.start("read pack headers", total_files=len(packs))

    def save() -> None:
        nonlocal records, entries
        confirm()
        repo.save_file(FileType.INDEX, encode_index(records))
        out.index_written += 1
        records, entries = [], 0

    for name, rec in _headers(repo, packs, workers):
        progress.advance(files=1)
        if isinstance(rec, str):
            out.unreadable.append(f"pack {name[:16]}: {rec}")
            continue
        if not rec[2]:
            continue
        records.append(rec)
        entries += len(rec[2])
        out.packs += 1
        out.blobs += len(rec[2])
        if entries >= INDEX_ENTRIES:
            save()
    if records:
        save()
    progress.finish()
    confirm()
    for name in old:
        check()
        try:
            repo.backend.remove(Handle(FileType.INDEX, name))
        except NotFoundError:
            pass
        out.index_removed += 1
    return out


@dataclass
class SnapshotRepair:
    snapshot: Snapshot
    #: what was left out, one line each ("/path/file: data blob ... is missing")
    lost: list[str] = field(default_factory=list)
    new: Snapshot | None = None
    #: the root tree itself is lost: nothing can be kept
    unrecoverable: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.snapshot.id,
            "lost": self.lost,
            "new_id": self.new.id if self.new is not None else None,
            "unrecoverable": self.unrecoverable,
        }


class _Repairer:
    def __init__(self, repo: Repository, writer: BlobWriter | None, read_data: bool) -> None:
        self.repo = repo
        self.writer = writer
        self.read_data = read_data
        self.done: dict[bytes, tuple[bytes | None, list[str], str]] = {}  # tree id -> tree()
        self.blob_ok: dict[bytes, str | None] = {}
        self.stored = {fi.name for fi in repo.backend.list(FileType.DATA)}

    def _blob_problem(self, blob_id: bytes) -> str | None:
        if blob_id in self.blob_ok:
            return self.blob_ok[blob_id]
        loc = self.repo.index.lookup(blob_id)
        problem = None
        if loc is None or loc.type != DATA:
            problem = f"data blob {blob_id.hex()[:16]} is missing"
        elif loc.pack_id.hex() not in self.stored:
            problem = f"data blob {blob_id.hex()[:16]} is missing (its pack {loc.pack_id.hex()[:16]} is gone)"
        elif self.read_data:
            try:
                self.repo.load_blob(DATA, blob_id)
            except SafeholdError as exc:
                problem = f"data blob {blob_id.hex()[:16]} is damaged ({exc})"
        self.blob_ok[blob_id] = problem
        return problem

    def tree(self, tree_id: bytes) -> tuple[bytes | None, list[str], str]:
        """(the id of the repaired tree: itself when nothing changed, None when the tree is lost; what was
        left out, as paths relative to this tree; why the tree is lost)."""
        if tree_id in self.done:
            return self.done[tree_id]
        try:
            nodes = decode_tree(self.repo.load_blob(TREE, tree_id), tree_id)
        except SafeholdError as exc:
            self.done[tree_id] = (None, [], str(exc))
            return self.done[tree_id]
        kept: list[Node] = []
        lost: list[str] = []
        changed = False
        for n in nodes:
            name = n.display_name
            if n.type == FILE:
                problems = [p for b in n.content if (p := self._blob_problem(b)) is not None]
                if problems:
                    lost.append(f"{name}: {problems[0]}")
                    changed = True
                    continue
            elif n.type == DIR and n.subtree is not None:
                sub, sub_lost, why = self.tree(n.subtree)
                if sub is None:
                    lost.append(f"{name}/: folder lost ({why})")
                    changed = True
                    continue
                lost += [f"{name}/{line}" for line in sub_lost]
                if sub != n.subtree:
                    n = dataclasses.replace(n, subtree=sub)
                    changed = True
            kept.append(n)
        new_id: bytes | None = tree_id
        if changed and self.writer is not None:
            new_id = self.writer.save_blob(TREE, encode_tree(kept))
        self.done[tree_id] = (new_id, lost, "")
        return self.done[tree_id]


def repair_snapshots(
    repo: Repository,
    snaps: list[Snapshot],
    *,
    dry_run: bool,
    read_data: bool = False,
    check: Callable[[], None],
    confirm: Callable[[], None],
    progress: Progress | None = None,
) -> list[SnapshotRepair]:
    """For every snapshot that has losses, a repaired snapshot (written unless ``dry_run``)."""
    progress = progress or NullProgress()
    repo.load_index()
    writer = None if dry_run else BlobWriter(repo, check=check, confirm=confirm)
    rep = _Repairer(repo, writer, read_data)
    out: list[SnapshotRepair] = []
    progress.start("repair snapshots", total_files=len(snaps))
    try:
        todo: list[tuple[SnapshotRepair, bytes]] = []
        for s in snaps:
            result = SnapshotRepair(s)
            try:
                root = bytes.fromhex(s.tree)
            except ValueError:
                root = b""
            new_root, lost, why = rep.tree(root) if len(root) == 32 else (None, [], "malformed tree id")
            result.lost = (
                [f"/{line}" for line in lost] if new_root is not None else [f"/: snapshot root lost ({why})"]
            )
            progress.advance(files=1)
            if not result.lost:
                continue
            out.append(result)
            if new_root is None:
                result.unrecoverable = True
            elif writer is not None:
                todo.append((result, new_root))
        if writer is not None:
            writer.flush()  # trees before the snapshots that name them
            for result, new_root in todo:
                s = result.snapshot
                new = dataclasses.replace(
                    s,
                    tree=new_root.hex(),
                    tags=sorted({*s.tags, REPAIRED_TAG}),
                    errors=[*s.errors, *(f"repaired: lost {line}" for line in result.lost)],
                    parent=s.id,
                    original=None,
                    pinned=s.pinned,
                    id="",
                    written=None,
                )
                confirm()
                repo.save_snapshot(new)
                result.new = new
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    progress.finish()
    return out
