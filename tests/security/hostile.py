"""Snapshots that a hostile writer could store: trees written through the engine's own writer, bypassing
the encoder's checks (any name, duplicates, any order).

An entry is ``(name, value)``: ``bytes`` is a file with that content, a ``list`` of entries a folder,
:class:`Link` a symlink. Folders get mode 0o755, files 0o644, all owned by the current user.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Union

import msgpack

from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, SYMLINK, TREE_VERSION, Node


@dataclass
class Link:
    target: bytes


Value = Union[bytes, "list[tuple[bytes, Value]]", Link]
MTIME = 1_700_000_000_000_000_000


def _node(w: BlobWriter, name: bytes, value: Value) -> Node:
    uid, gid = os.getuid(), os.getgid()
    if isinstance(value, bytes):
        # files above 1 MiB in 512 KiB blobs: a restore writes them piece by piece
        step = len(value) if len(value) <= 1 << 20 else 512 << 10
        content = [w.save_blob(DATA, value[i : i + step]) for i in range(0, len(value), step or 1)]
        return Node(name, FILE, 0o644, uid, gid, mtime_ns=MTIME, size=len(value), content=content)
    if isinstance(value, Link):
        return Node(name, SYMLINK, 0o777, uid, gid, mtime_ns=MTIME, linktarget=value.target)
    return Node(name, DIR, 0o755, uid, gid, mtime_ns=MTIME, subtree=save_tree(w, value))


def save_tree(w: BlobWriter, entries: list[tuple[bytes, Value]]) -> bytes:
    """Store a tree holding ``entries`` exactly as given (names unchecked, order kept); its id."""
    raw = msgpack.packb([TREE_VERSION, [_node(w, n, v).to_wire() for n, v in entries]], use_bin_type=True)
    return w.save_blob(TREE, raw)


def save_snapshot(
    repo: Repository, entries: list[tuple[bytes, Value]], *, components: dict[str, Any] | None = None
) -> Snapshot:
    """A snapshot whose root tree holds ``entries``; ``components`` as a profile snapshot records them."""
    w = BlobWriter(repo)
    tree = save_tree(w, entries)
    w.flush()
    snap = Snapshot(
        time="2024-01-01T00:00:00+00:00",
        tree=tree.hex(),
        paths=["/hostile"],
        hostname=socket.gethostname(),
        components=components or {},
    )
    repo.save_snapshot(snap)
    return snap


def escapes(world_root: bytes) -> dict[str, tuple[list[tuple[bytes, Value]], bytes]]:
    """One hostile name per case: (entries of the root tree, the offending name). Each is placed where a
    restore of the root into ``<world>/target`` would write outside the target (or crash, or silently
    pick one of two entries)."""
    outside = os.path.join(world_root, b"outside")
    deep: list[tuple[bytes, Value]] = [(b"outside", [(b"x", b"evil\n")])]
    for _ in range(3):
        deep = [(b"..", deep)]
    return {
        "absolute": (
            [(os.path.join(outside, b"etc", b"planted.sh"), b"evil\n")],
            os.path.join(outside, b"etc", b"planted.sh"),
        ),
        "dotdot-folder": ([(b"..", [(b"outside", [(b"etc", [(b"planted.sh", b"evil\n")])])])], b".."),
        "dotdot-in-name": ([(b"../outside/etc/planted.sh", b"evil\n")], b"../outside/etc/planted.sh"),
        "slash-inside": ([(b"sub", [(b"a/b", b"x\n")]), (b"zz", b"ok\n")], b"a/b"),
        "nul": ([(b"bad\x00name", b"x\n")], b"bad\x00name"),
        "empty": ([(b"", [(b"inside", b"x\n")])], b""),
        "dot": ([(b".", [(b"inside", b"x\n")])], b"."),
        "duplicate": ([(b"same", b"first\n"), (b"same", b"second\n")], b"same"),
        "out-of-order": ([(b"b", b"b\n"), (b"a", b"a\n")], b"a"),
        "deep-dotdot": ([(b"a", [(b"b", deep)])], b".."),
    }
