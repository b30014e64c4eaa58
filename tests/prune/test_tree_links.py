"""The reference-only tree reader prune marks with: same layout checks as decode_tree, ids checked."""

from __future__ import annotations

import msgpack
import pytest

from safehold.engine.format.tree import DIR, FILE, TREE_VERSION, Node, encode_tree, tree_links
from safehold.errors import IntegrityError


def _wire(**changes: object) -> list[object]:
    w = Node(name=b"f", type=FILE, content=[b"\x01" * 32]).to_wire()
    for index, value in changes.items():
        w[int(index[1:])] = value
    return w


def test_links_of_a_real_tree() -> None:
    nodes = [
        Node(name=b"a", type=FILE, content=[b"\x02" * 32, b"\x03" * 32]),
        Node(name=b"d", type=DIR, subtree=b"\x04" * 32),
    ]
    assert tree_links(encode_tree(nodes)) == [
        (FILE, b"a", [b"\x02" * 32, b"\x03" * 32], None),
        (DIR, b"d", [], b"\x04" * 32),
    ]


@pytest.mark.parametrize(
    "node",
    [
        _wire(i11=[b"\x01" * 31]),  # an id that is not 32 bytes would shift every later id
        _wire(i11=["text"]),
        _wire(i11=b"\x01" * 32),
        _wire(i12=b"\x05" * 8),
        _wire(i1="../../etc"),
        _wire(i0="name-as-text"),
        [b"short"],
    ],
)
def test_hostile_trees_are_refused(node: list[object]) -> None:
    with pytest.raises(IntegrityError):
        tree_links(msgpack.packb([TREE_VERSION, [node]], use_bin_type=True))


def test_undecodable_tree() -> None:
    with pytest.raises(IntegrityError):
        tree_links(b"\xc1garbage")
