"""Comparing two snapshots: which paths were added, removed or modified, and for SaaS components the
configuration drift field by field (:func:`configuration_drift`).

Files that a source *writes* (a SaaS export's JSON, a dump, a command's output, the snapshot's own
``metadata.json``) carry the time they were written at, which changes on every backup; only files copied
from a file system (``files`` components, the trees of ``system``) have times of their own. So a file
whose content, mode and owner are unchanged counts as "metadata only" when its times differ only where
they are the file's own: in a component of kind ``files``, in a snapshot of plain paths, or where the node
does not look written by safehold (its three times are not one and the same instant).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, Node
from safehold.engine.format.treewalk import load_tree, walk
from safehold.errors import NotFound
from safehold.operations.backup.components import EngineComponentReader
from safehold.sources import registry


@dataclass
class Change:
    kind: str  # "+", "-", "M" (content), "T" (type), "U" (metadata only)
    path: str


def diff_snapshots(repo: Repository, ref1: str, ref2: str) -> tuple[list[Change], dict[str, int]]:
    repo.load_index()
    s1, s2 = repo.find_snapshot(ref1), repo.find_snapshot(ref2)
    changes: list[Change] = []
    stats = {"added": 0, "removed": 0, "modified": 0, "metadata": 0, "bytes_added": 0}
    own = _own_times(s1, s2)
    _diff_trees(repo, bytes.fromhex(s1.tree), bytes.fromhex(s2.tree), "", changes, stats, own)
    return changes, stats


def _own_times(s1: Snapshot, s2: Snapshot) -> Callable[[str], bool]:
    """Whether the files below a path (``/component/...``) keep times of their own in both snapshots."""
    if not s1.components and not s2.components:
        return lambda _path: True  # a snapshot of plain paths: every file comes from a file system

    def own(path: str) -> bool:
        top = path.lstrip("/").partition("/")[0]
        return all(_keeps_times(_kind_of(s, top)) for s in (s1, s2))

    return own


def _kind_of(snap: Snapshot, name: str) -> str | None:
    meta = snap.components.get(name)
    return meta.get("kind") if isinstance(meta, dict) and isinstance(meta.get("kind"), str) else None


def _keeps_times(kind: str | None) -> bool:
    """Whether a kind's stored files carry the times of the files they were read from
    (``Source.keeps_file_times``), rather than the time the source wrote them."""
    return kind is not None and kind in registry.kinds() and registry.source_class(kind).keeps_file_times


def _written(node: Node) -> bool:
    """A node as a source's writer makes it: stamped with one instant for all three times."""
    return node.mtime_ns == node.ctime_ns == node.atime_ns


def _metadata_differs(x: Node, y: Node, own_times: bool) -> bool:
    if (x.mode, x.uid, x.gid, x.xattrs) != (y.mode, y.uid, y.gid, y.xattrs):
        return True
    if own_times or not (_written(x) and _written(y)):
        return x.mtime_ns != y.mtime_ns
    return False


def _all_below(
    repo: Repository, node: Node, path: str, kind: str, out: list[Change], stats: dict[str, int]
) -> None:
    out.append(Change(kind, path + ("/" if node.type == DIR else "")))
    stats["added" if kind == "+" else "removed"] += 1
    if kind == "+":
        stats["bytes_added"] += node.size
    if node.type == DIR and node.subtree is not None:
        for child in load_tree(repo, node.subtree):
            _all_below(repo, child, f"{path}/{child.display_name}", kind, out, stats)


def _diff_trees(
    repo: Repository,
    t1: bytes,
    t2: bytes,
    prefix: str,
    out: list[Change],
    stats: dict[str, int],
    own_times: Callable[[str], bool],
) -> None:
    if t1 == t2:
        return
    a = {n.name: n for n in load_tree(repo, t1)}
    b = {n.name: n for n in load_tree(repo, t2)}
    for name in sorted(set(a) | set(b)):
        path = f"{prefix}/{os.fsdecode(name)}"
        x, y = a.get(name), b.get(name)
        if x is None and y is not None:
            _all_below(repo, y, path, "+", out, stats)
        elif y is None and x is not None:
            _all_below(repo, x, path, "-", out, stats)
        elif x is not None and y is not None:
            if x.type != y.type:
                out.append(Change("T", path))
                stats["modified"] += 1
            elif x.type == DIR and x.subtree is not None and y.subtree is not None:
                if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid):
                    out.append(Change("U", path + "/"))
                    stats["metadata"] += 1
                _diff_trees(repo, x.subtree, y.subtree, path, out, stats, own_times)
            elif x.content != y.content or x.linktarget != y.linktarget:
                out.append(Change("M", path))
                stats["modified"] += 1
                stats["bytes_added"] += max(0, y.size - x.size)
            elif _metadata_differs(x, y, own_times(path)):
                out.append(Change("U", path))
                stats["metadata"] += 1


@dataclass
class Drift:
    """Configuration drift of one SaaS component between two snapshots."""

    component: str
    kind: str
    lines: list[str]


def configuration_drift(repo: Repository, ref1: str, ref2: str) -> list[Drift]:
    """For every component of a kind that compares drift (``Source.compares_drift``: the SaaS exports)
    that both snapshots hold with the same
    kind and status ok, the field-by-field changes from the first to the second export (one
    :class:`Drift` per component, in name order; its ``lines`` are empty when nothing changed).

    Raises NotFound for an unknown snapshot reference.
    """
    repo.load_index()
    s1, s2 = repo.find_snapshot(ref1), repo.find_snapshot(ref2)
    out: list[Drift] = []
    for name in sorted(set(s1.components) & set(s2.components)):
        kind = _kind(s1, name)
        if kind is None or _kind(s2, name) != kind or kind not in registry.kinds():
            continue
        source = registry.source_class(kind)
        if not source.compares_drift:
            continue
        old, new = _component_files(repo, s1, name), _component_files(repo, s2, name)
        if old is None or new is None:
            continue
        out.append(Drift(name, kind, source.drift(old, new)))
    return out


def _kind(snap: Snapshot, name: str) -> str | None:
    meta = snap.components.get(name)
    if not isinstance(meta, dict) or meta.get("status", "ok") != "ok":
        return None
    kind = meta.get("kind")
    return kind if isinstance(kind, str) else None


def _component_files(repo: Repository, snap: Snapshot, name: str) -> dict[str, bytes] | None:
    """Every file of component ``name``'s folder as relative path -> bytes (read and verified through
    :class:`EngineComponentReader`); None when the snapshot has no such folder."""
    try:
        reader = EngineComponentReader(repo, snap, name)
    except NotFound:
        return None
    if reader.root.subtree is None:
        return {}
    return {
        os.fsdecode(rel): reader.read_bytes(os.fsdecode(rel))
        for rel, node in walk(repo, reader.root.subtree)
        if node.type == FILE
    }
