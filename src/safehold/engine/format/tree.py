"""Tree nodes and their deterministic encoding.

A *tree* is one folder of a snapshot: a list of :class:`Node` sorted by name, encoded with msgpack in a
fixed field order so that the same folder always encodes to the same bytes (and so deduplicates). Names,
symlink targets and xattr names are raw bytes: non-UTF-8 names survive a round trip.

**The path-safety rule.** A tree may have been written by anyone who holds a passphrase (another host
sharing the repository, a repository copied with ``copy --from``), and its names become paths when a
snapshot is restored, exported or listed. So every name is checked by :func:`name_problem`, the one rule
for stored names: a name is one path component, never empty, ``.`` or ``..``, and never contains ``/``
or NUL. The names of one folder are unique and in the encoder's sorted order, so a folder has exactly one
encoding. :func:`encode_tree` refuses to write a tree that breaks the rule; :func:`decode_tree` refuses to
read one (:class:`~safehold.errors.IntegrityError` naming the tree and the offending name, shown with
``repr``), so restore, export, ``dump``, ``ls``, ``diff``, ``copy`` and ``check`` (which reports it as
damage) all see the rule enforced before any name becomes a path.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgpack

from safehold.errors import IntegrityError

TREE_VERSION = 1

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
FIFO = "fifo"
SOCKET = "socket"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
NODE_TYPES = (FILE, DIR, SYMLINK, FIFO, SOCKET, CHARDEV, BLOCKDEV)
_CANONICAL_TYPE = {t: t for t in NODE_TYPES}


@dataclass(slots=True)
class Node:
    """One entry of a folder, with everything needed to recreate it.

    ``mode`` holds the permission bits (``stat.S_IMODE``), ``content`` the ids of the blobs whose
    concatenation is the file, ``subtree`` the id of a folder's tree blob. ``inode``/``device``/``links``
    let restore recreate hard links; ``rdev`` is the device number of a device node.
    """

    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    atime_ns: int = 0
    size: int = 0
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    linktarget: bytes | None = None
    inode: int = 0
    device: int = 0
    links: int = 1
    rdev: int = 0
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")

    def to_wire(self) -> list[Any]:
        return [
            self.name,
            self.type,
            self.mode,
            self.uid,
            self.gid,
            self.user,
            self.group,
            self.mtime_ns,
            self.ctime_ns,
            self.atime_ns,
            self.size,
            self.content,
            self.subtree,
            self.linktarget,
            self.inode,
            self.device,
            self.links,
            self.rdev,
            [list(x) for x in self.xattrs],
        ]

    @classmethod
    def from_wire(cls, w: list[Any]) -> Node:
        if not isinstance(w, list) or len(w) != 19 or w[1] not in NODE_TYPES:
            raise IntegrityError("malformed tree node")
        if not (w[12] is None or type(w[12]) is bytes) or not (
            w[13] is None or (type(w[13]) is bytes and b"\0" not in w[13])
        ):
            raise IntegrityError("malformed tree node (folder or symlink target)")
        # Type, user and group names repeat in every node: share one string object each (a restore
        # batch holds thousands of nodes). Positional arguments, in field order: a walk decodes every
        # node of a snapshot, and keywords cost a third of the time here.
        user, group = w[5], w[6]
        return cls(
            w[0],  # name
            _CANONICAL_TYPE[w[1]],
            w[2],  # mode
            w[3],  # uid
            w[4],  # gid
            sys.intern(user) if type(user) is str else user,
            sys.intern(group) if type(group) is str else group,
            w[7],  # mtime_ns
            w[8],  # ctime_ns
            w[9],  # atime_ns
            w[10],  # size
            w[11] if type(w[11]) is list else list(w[11]),  # content
            w[12],  # subtree
            w[13],  # linktarget
            w[14],  # inode
            w[15],  # device
            w[16],  # links
            w[17],  # rdev
            [(bytes(a), bytes(b)) for a, b in w[18]] if w[18] else [],  # xattrs
        )

    def to_json(self) -> dict[str, Any]:
        """A readable form for ``ls --json`` and ``cat``."""
        d: dict[str, Any] = {
            "name": self.display_name,
            "type": self.type,
            "mode": oct(self.mode),
            "uid": self.uid,
            "gid": self.gid,
            "user": self.user,
            "group": self.group,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "size": self.size,
        }
        if self.content:
            d["content"] = [c.hex() for c in self.content]
        if self.subtree is not None:
            d["subtree"] = self.subtree.hex()
        if self.linktarget is not None:
            d["linktarget"] = self.linktarget.decode("utf-8", "surrogateescape")
        if self.links > 1:
            d["inode"] = self.inode
            d["links"] = self.links
        if self.rdev:
            d["rdev"] = self.rdev
        if self.xattrs:
            d["xattrs"] = {k.decode("utf-8", "surrogateescape"): v.hex() for k, v in self.xattrs}
        return d


_BAD_NAMES = (b"", b".", b"..")
_BAD_NAME_SET = frozenset(_BAD_NAMES)


def name_problem(name: object) -> str | None:
    """What makes ``name`` unfit to be an entry of a folder, or None: the path-safety rule (see the
    module docstring). The answer never quotes the name; callers show it with ``repr``."""
    if type(name) is not bytes:
        return "is not a byte string"
    if name in _BAD_NAMES:
        return "is empty" if not name else "is not a name ('.' or '..')"
    if b"/" in name:
        return "contains '/'"
    if b"\0" in name:
        return "contains a NUL byte"
    return None


def path_problem(rel: str | bytes) -> str | None:
    """What makes a stored ``/``-separated relative path unfit to name something below a folder, or None:
    it is not empty, not absolute, and each of its components passes :func:`name_problem` (a trailing
    ``/`` is allowed)."""
    raw = os.fsencode(rel) if isinstance(rel, str) else rel
    if type(raw) is not bytes or not raw:
        return "is empty"
    if raw.startswith(b"/"):
        return "is absolute"
    for part in raw.removesuffix(b"/").split(b"/"):
        problem = name_problem(part)
        if problem is not None:
            return f"has a component that {problem}"
    return None


def _names_problem(nodes: list[Node]) -> tuple[bytes, str] | None:
    """The first name of a folder that breaks the rule: (name, what is wrong), or None."""
    prev = None
    for n in nodes:
        name = n.name
        # the common case in one expression; name_problem says what is wrong otherwise
        if type(name) is not bytes or name in _BAD_NAMES or b"/" in name or b"\0" in name:
            return name, name_problem(name) or "is not allowed"
        if prev is not None and name <= prev:
            return name, "appears twice" if name == prev else "is out of order"
        prev = name
    return None


def encode_tree(nodes: list[Node]) -> bytes:
    """Encode a folder's nodes deterministically (sorted by raw name). Raises ``ValueError`` for a name
    that breaks the path-safety rule or appears twice."""
    ordered = sorted(nodes, key=lambda n: n.name)
    bad = _names_problem(ordered)
    if bad is not None:
        raise ValueError(f"entry {bad[0]!r} of a tree {bad[1]}")
    return msgpack.packb([TREE_VERSION, [n.to_wire() for n in ordered]], use_bin_type=True)


def _unpack(data: bytes, tree_id: bytes | None) -> tuple[str, list[Any]]:
    """(how messages name the tree, its nodes in wire form) of a tree blob whose layout is checked;
    raises IntegrityError."""
    what = f"tree {tree_id.hex()[:16]}" if tree_id is not None else "tree blob"
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise IntegrityError(f"{what} does not decode: {exc}") from exc
    if not isinstance(obj, list) or len(obj) != 2 or obj[0] != TREE_VERSION or not isinstance(obj[1], list):
        raise IntegrityError(f"{what} has an unknown layout")
    return what, obj[1]


def decode_tree(data: bytes, tree_id: bytes | None = None) -> list[Node]:
    """Decode a tree blob; raises IntegrityError on anything malformed, including a name that breaks the
    path-safety rule (the message names ``tree_id`` when given)."""
    what, wire = _unpack(data, tree_id)
    nodes = [Node.from_wire(w) for w in wire]
    bad = _names_problem(nodes)
    if bad is not None:
        raise IntegrityError(
            f"{what} holds an entry named {bad[0]!r} that {bad[1]}",
            hint="A snapshot holding it was damaged or written by a hostile writer; safehold refuses to "
            "turn it into paths. 'safehold check' lists every such tree.",
        )
    return nodes


class TreeRefs(NamedTuple):
    """The columns of a tree that :func:`tree_refs` returns: one item per node, in the tree's order."""

    names: tuple[bytes, ...]
    types: tuple[str, ...]
    contents: tuple[list[bytes], ...]
    subtrees: tuple[bytes | None, ...]


_NO_REFS = TreeRefs((), (), (), ())
_NODE_TYPE_SET = frozenset(NODE_TYPES)
_REF_TYPES = {type(None), bytes}


def tree_refs(data: bytes, tree_id: bytes | None = None) -> TreeRefs:
    """Names, types, content blob ids and subtree ids of a tree blob's nodes, column by column, without
    building :class:`Node` objects: for ``check``, which reads every tree of every snapshot. Whatever
    :func:`decode_tree` refuses is refused here too (the same IntegrityError: a tree that fails the
    column checks below is decoded by :func:`decode_tree`, which names the problem); a content id that is
    not 32 bytes is refused as well. Checked by column (C loops over the tree): every node is a list of
    19 fields; types are node types; names are byte strings that pass the path-safety rule, unique and in
    order; folder and symlink targets are None or bytes (a target without NUL); content lists hold 32-byte
    ids. A tree with extended attributes goes through :func:`decode_tree` (rare; it checks their shape)."""
    what, wire = _unpack(data, tree_id)
    if not wire:
        return _NO_REFS
    if set(map(type, wire)) == {list} and set(map(len, wire)) == {19}:
        cols = tuple(zip(*wire, strict=True))
        names, types, contents, subtrees, targets, xattrs = (
            cols[0], cols[1], cols[11], cols[12], cols[13], cols[18]
        )  # fmt: skip
        if (
            set(map(type, types)) == {str}
            and set(types) <= _NODE_TYPE_SET
            and set(map(type, names)) == {bytes}
            and not any(xattrs)
            and set(map(type, subtrees)) <= _REF_TYPES
            and set(map(type, targets)) <= _REF_TYPES
            and b"\0" not in b"".join(t for t in targets if t)
            and _names_ok(names)
            and set(map(type, contents)) == {list}
        ):
            ids = list(itertools.chain.from_iterable(contents))
            if set(map(type, ids)) <= {bytes} and set(map(len, ids)) <= {32}:
                return TreeRefs(names, types, contents, subtrees)
    nodes = decode_tree(data, tree_id)  # raises what is wrong (the same error as for any reader)
    if any(type(b) is not bytes or len(b) != 32 for n in nodes for b in n.content):
        raise IntegrityError(f"{what}: malformed content ids")
    return TreeRefs(
        tuple(n.name for n in nodes),
        tuple(n.type for n in nodes),
        tuple(n.content for n in nodes),
        tuple(n.subtree for n in nodes),
    )


def _names_ok(names: tuple[bytes, ...]) -> bool:
    """:func:`_names_problem` finds nothing (byte strings given): checked with C loops over the names."""
    joined = b"".join(names)
    return (
        b"/" not in joined
        and b"\0" not in joined
        and not _BAD_NAME_SET.intersection(names)
        and names == tuple(sorted(set(names)))
    )


def tree_links(
    data: bytes, tree_id: bytes | None = None
) -> list[tuple[str, bytes, list[bytes], bytes | None]]:
    """``(type, name, content blob ids, subtree id)`` of each node of a tree blob, without building
    :class:`Node` objects: for walks that only follow references (prune marking what is used). The layout
    and every id returned are checked (32 bytes each); names are returned as stored and never become
    paths here, so the path-safety rule is not applied (:func:`decode_tree` does, for readers of names).
    Raises IntegrityError on anything malformed."""
    what, wire = _unpack(data, tree_id)
    out: list[tuple[str, bytes, list[bytes], bytes | None]] = []
    for w in wire:
        if not isinstance(w, list) or len(w) != 19 or w[1] not in NODE_TYPES or type(w[0]) is not bytes:
            raise IntegrityError(f"{what}: malformed tree node")
        content, subtree = w[11], w[12]
        if not isinstance(content, list) or any(type(b) is not bytes or len(b) != 32 for b in content):
            raise IntegrityError(f"{what}: malformed content ids")
        if not (subtree is None or (type(subtree) is bytes and len(subtree) == 32)):
            raise IntegrityError(f"{what}: malformed folder id")
        out.append((_CANONICAL_TYPE[w[1]], w[0], content, subtree))
    return out
