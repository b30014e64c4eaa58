"""check's tree walk and pack headers: ``tree_refs`` refuses whatever ``decode_tree`` refuses and
``decode_header``'s column checks whatever ``PackedBlob.from_wire`` refuses (hostile trees and headers:
repository contents are untrusted), and trees read through pack windows are still proven one by one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgpack
import pytest

from safehold.backends.base import FileType, Handle
from safehold.engine.check.checker import Checker
from safehold.engine.format.crypto import Session, SessionCache
from safehold.engine.format.pack import HEADER_AD, TRAILER_LEN, TREE, PackedBlob, decode_header
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, SYMLINK, TREE_VERSION, Node, decode_tree, tree_refs
from safehold.errors import IntegrityError
from tests.security.hostile import save_snapshot

ID = bytes(range(32))


def _good() -> list[Any]:
    nodes = [
        Node(b"a-file", FILE, 0o644, size=3, content=[ID, bytes(32)]),
        Node(b"b-dir", DIR, 0o755, subtree=bytes(reversed(range(32)))),
        Node(b"c-link", SYMLINK, 0o777, linktarget=b"../x"),
        Node(b"d-empty", FILE, 0o600),
        Node(b"e-xattr", FILE, 0o600, content=[ID], xattrs=[(b"user.k", b"v")]),
    ]
    return [n.to_wire() for n in nodes]


def _enc(wire: Any) -> bytes:
    return msgpack.packb([TREE_VERSION, wire], use_bin_type=True)


def _mutations() -> dict[str, Any]:
    """Trees a hostile or broken writer could store: name -> wire list of nodes (or a whole document)."""
    out: dict[str, Any] = {}

    def put(name: str, node: int, field: int, value: Any) -> None:
        w = copy.deepcopy(_good())
        w[node][field] = value
        out[name] = w

    put("name-empty", 0, 0, b"")
    put("name-dot", 0, 0, b".")
    put("name-dotdot", 3, 0, b"..")
    put("name-slash", 0, 0, b"a/b")
    put("name-nul", 0, 0, b"a\0b")
    put("name-str", 0, 0, "a-file")
    put("name-duplicate", 1, 0, b"a-file")
    put("name-out-of-order", 4, 0, b"0-first")
    put("type-unknown", 0, 1, "door")
    put("type-int", 0, 1, 7)
    put("subtree-str", 1, 12, "x" * 32)
    put("subtree-int", 1, 12, 5)
    put("target-nul", 2, 13, b"a\0b")
    put("target-str", 2, 13, "x")
    put("content-int", 0, 11, 5)
    put("content-short-id", 0, 11, [b"short"])
    put("content-str-id", 0, 11, ["x" * 32])
    put("content-bytes", 0, 11, bytes(64))
    put("xattrs-int", 4, 18, 5)
    put("xattrs-triples", 4, 18, [[b"a", b"b", b"c"]])
    short = copy.deepcopy(_good())
    short[1] = short[1][:18]
    out["node-18-fields"] = short
    out["node-not-list"] = [*_good()[:2], 5]
    out["empty"] = []
    return out


def _outcome(fn: Any, data: bytes) -> tuple[str, str] | Any:
    try:
        return fn(data, ID)
    except Exception as exc:  # the outcome is compared, whatever it is
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("case", ["good", *sorted(_mutations())])
def test_tree_refs_refuses_what_decode_tree_refuses(case: str) -> None:
    data = _enc(_good() if case == "good" else _mutations()[case])
    old, new = _outcome(decode_tree, data), _outcome(tree_refs, data)
    if isinstance(old, tuple):  # decode_tree refused it: tree_refs does, in the same words
        assert new == old
    elif case.startswith("content-"):  # decode_tree lets an id that is not 32 bytes through; check must not
        assert new[0] == "IntegrityError" and "malformed content ids" in new[1]
    else:
        assert tuple(new.names) == tuple(n.name for n in old)
        assert list(new.types) == [n.type for n in old]
        assert list(new.contents) == [n.content for n in old]
        assert list(new.subtrees) == [n.subtree for n in old]


def test_tree_refs_of_damaged_documents() -> None:
    for data in (b"", b"\xc1", msgpack.packb([TREE_VERSION + 1, []]), msgpack.packb({"a": 1})):
        with pytest.raises(IntegrityError):
            tree_refs(data, ID)


def _many_folders(n: int) -> list[tuple[bytes, Any]]:
    return [(b"d%04d" % i, [(b"f%d" % k, b"content %d %d" % (i, k)) for k in range(3)]) for i in range(n)]


def test_check_reads_trees_through_windows_and_proves_each(repo: Repository, repo_path: Path) -> None:
    snap = save_snapshot(repo, [(b"top", _many_folders(300))])
    checker = Checker(repo)
    result = checker.run()
    assert result.ok and result.trees == 302
    assert 0 < checker._trees.reads < 10  # a few windows, not a read per tree

    # damage one tree (not the root) in its pack: reported by name, the rest still checked
    repo.load_index()
    tree_id = next(
        e.id
        for _pid, entries in repo.index.iter_packs()
        for e in entries
        if e.type == TREE and e.id != snap.tree
    )
    loc = repo.index.lookup(tree_id)
    assert loc is not None
    path = repo_path / "data" / loc.pack_id.hex()[:2] / loc.pack_id.hex()
    raw = bytearray(path.read_bytes())
    raw[loc.offset + loc.length // 2] ^= 0x40
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    result = Checker(repo).run()
    assert not result.ok
    assert any(f"tree {tree_id.hex()[:16]}" in e and "failed authentication" in e for e in result.errors)
    assert result.trees >= 300 - 1  # the walk went on past the damaged folder
    assert repo.backend.stat(Handle(FileType.DATA, loc.pack_id.hex())).size == len(raw)


def _header_mutations() -> dict[str, list[Any]]:
    good = [[0, ID, 0, 40, 30, True], [1, bytes(32), 40, 60, 90, False]]
    out: dict[str, list[Any]] = {"good": good, "empty": []}
    bad: dict[str, tuple[int, int, Any]] = {
        "type-unknown": (0, 0, 2),
        "type-str": (0, 0, "0"),
        "type-bool": (1, 0, True),  # from_wire accepts True as type 1 (an int); so must the columns
        "id-short": (0, 1, b"x"),
        "id-str": (0, 1, "x" * 32),
        "offset-negative": (0, 2, -1),
        "offset-str": (0, 2, "0"),
        "offset-float": (0, 2, 0.0),
        "length-zero": (1, 3, 0),
        "length-outside": (1, 3, 10_000),
        "raw-str": (0, 4, "30"),
        "compressed-int": (0, 5, 1),
    }
    for name, (row, col, value) in bad.items():
        w = copy.deepcopy(good)
        w[row][col] = value
        out[name] = w
    out["entry-short"] = [good[0][:5], good[1]]
    out["entry-dict"] = [good[0], {"a": 1}]
    return out


def _reference_header(raw: list[Any], limit: int) -> list[PackedBlob]:
    """decode_header as it was, entry by entry through from_wire."""
    entries = [PackedBlob.from_wire(w) for w in raw]
    for e in entries:
        if e.offset < 0 or e.length <= 0 or e.offset + e.length > limit:
            raise ValueError("pack header entry points outside the pack")
    return entries


@pytest.mark.parametrize("case", sorted(_header_mutations()))
def test_decode_header_refuses_what_from_wire_refuses(case: str) -> None:
    raw = _header_mutations()[case]
    session = Session(bytes(32))
    ct = session.seal(msgpack.packb(raw, use_bin_type=True), HEADER_AD)
    size = 1000 + len(ct) + TRAILER_LEN
    limit = size - TRAILER_LEN - len(ct)
    try:
        expected: Any = _reference_header(raw, limit)
    except (ValueError, TypeError) as exc:
        expected = ValueError
        assert isinstance(exc, ValueError), "from_wire raises ValueError for every malformed entry"
    if expected is ValueError:
        with pytest.raises(ValueError):
            decode_header(SessionCache(bytes(32)), session.envelope, ct, size)
    else:
        assert decode_header(SessionCache(bytes(32)), session.envelope, ct, size) == expected
