"""Comparing two snapshots: which paths were added, removed or modified."""

from __future__ import annotations

import os
from dataclasses import dataclass

from safehold.engine.repository import Repository
from safehold.engine.restorer import load_tree
from safehold.engine.tree import DIR, Node


@dataclass
class Change:
    kind: str  # "+", "-", "M" (content), "T" (type), "U" (metadata only)
    path: str


def diff_snapshots(repo: Repository, ref1: str, ref2: str) -> tuple[list[Change], dict[str, int]]:
    repo.load_index()
    s1, s2 = repo.find_snapshot(ref1), repo.find_snapshot(ref2)
    changes: list[Change] = []
    stats = {"added": 0, "removed": 0, "modified": 0, "metadata": 0, "bytes_added": 0}
    _diff_trees(repo, bytes.fromhex(s1.tree), bytes.fromhex(s2.tree), "", changes, stats)
    return changes, stats


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
    repo: Repository, t1: bytes, t2: bytes, prefix: str, out: list[Change], stats: dict[str, int]
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
                _diff_trees(repo, x.subtree, y.subtree, path, out, stats)
            elif x.content != y.content or x.linktarget != y.linktarget:
                out.append(Change("M", path))
                stats["modified"] += 1
                stats["bytes_added"] += max(0, y.size - x.size)
            elif (x.mode, x.uid, x.gid, x.mtime_ns, x.xattrs) != (y.mode, y.uid, y.gid, y.mtime_ns, y.xattrs):
                out.append(Change("U", path))
                stats["metadata"] += 1
