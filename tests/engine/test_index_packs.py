"""check compares each pack header with the index's entries as columns (``indexpacks.same_places``): it
must say "equal" exactly when the set comparison of (type, id, offset, length) it replaced did, for
hostile headers and hostile index entries alike (repository contents are untrusted)."""

from __future__ import annotations

import copy
import operator
import os
import random
from typing import Any

import pytest

from safehold.backends.base import FileType
from safehold.engine.check.checker import Checker
from safehold.engine.format.index import MasterIndex
from safehold.engine.format.indexfile import encode_index
from safehold.engine.format.indexpacks import from_packed, same_places, to_packed
from safehold.engine.format.pack import DATA, TREE, PackedBlob
from safehold.engine.format.repository import Repository
from tests.helpers.fixtures import PASSWORD
from tests.security.hostile import save_snapshot

_PLACE = operator.itemgetter(0, 1, 2, 3)
_RNG = random.Random(16)
_IDS = [_RNG.randbytes(32) for _ in range(6)]
_BASE = [
    PackedBlob(TREE if k % 3 == 0 else DATA, i, k * 100, 50 + k, 60 + k, bool(k % 2))
    for k, i in enumerate(_IDS)
]


def _wires(entries: list[PackedBlob]) -> list[list[Any]]:
    return [list(e) for e in entries]


def _cases() -> dict[str, tuple[list[list[Any]], list[PackedBlob]]]:
    """name -> (header wire lists, the index's entries for the pack)."""
    base = _BASE
    out: dict[str, tuple[list[list[Any]], list[PackedBlob]]] = {"same": (_wires(base), base)}

    def header(name: str, wires: list[list[Any]]) -> None:
        out[name] = (wires, base)

    def change(name: str, row: int, col: int, value: Any) -> None:
        w = copy.deepcopy(_wires(base))
        w[row][col] = value
        header(name, w)

    header("reordered", list(reversed(_wires(base))))
    header("entry-twice", [*_wires(base), list(base[2])])  # a set holds it once
    header("entry-missing", _wires(base[1:]))
    header("entry-extra", [*_wires(base), [DATA, bytes(32), 900, 10, 10, False]])
    header("empty", [])
    change("id-one-bit", 3, 1, bytes([base[3].id[0] ^ 1]) + base[3].id[1:])
    change("id-last-byte", 3, 1, base[3].id[:31] + bytes([base[3].id[31] ^ 0x80]))
    change("id-of-another", 1, 1, base[2].id)
    change("type-swapped", 1, 0, TREE)
    change("type-bool", 0, 0, True)  # True is TREE (1) in a set: still equal
    change("type-bool-false", 0, 0, False)  # DATA where the index says TREE
    change("offset-moved", 2, 2, base[2].offset + 1)
    change("offset-bool", 0, 2, False)  # 0 in a set: equal
    change("length-changed", 4, 3, base[4].length + 1)
    change("raw-changed", 4, 4, 1)  # raw length and compression are not compared
    change("compressed-flipped", 4, 5, not base[4].compressed)
    # two entries trading their lengths or ids: each column alone still holds the same values
    w = copy.deepcopy(_wires(base))
    w[1][3], w[2][3] = w[2][3], w[1][3]
    header("lengths-traded", w)
    w = copy.deepcopy(_wires(base))
    w[1][1], w[2][1] = w[2][1], w[1][1]
    header("ids-traded", w)
    w = copy.deepcopy(_wires(base))
    w[1][2] = w[2][2]  # two different blobs at one offset
    header("offset-shared", w)
    out["index-offset-shared"] = (w, [PackedBlob(*e) for e in w])
    out["index-entry-twice-other-length"] = (_wires(base), [*base, base[2]._replace(length=7)])
    out["index-empty"] = (_wires(base), [])
    out["both-empty"] = ([], [])
    return out


@pytest.mark.parametrize("case", sorted(_cases()))
def test_same_places_says_what_the_set_comparison_said(case: str) -> None:
    wires, entries = _cases()[case]
    expected = set(map(_PLACE, wires)) == set(map(_PLACE, entries))
    assert same_places(wires, from_packed(entries)) is expected


def test_same_places_on_random_packs() -> None:
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 40)
        entries = [
            PackedBlob(
                rng.choice([DATA, TREE]), rng.randbytes(32), rng.randrange(64), rng.randint(1, 4), 5, False
            )
            for _ in range(n)
        ]
        wires = _wires(entries)
        for _ in range(rng.randint(0, 2)):  # damage a few fields, or none
            row, col = rng.randrange(n), rng.choice([0, 1, 2, 3])
            wires[row][col] = {0: rng.choice([DATA, TREE]), 1: rng.choice(entries).id}.get(
                col, rng.randint(1, 4)
            )
        rng.shuffle(wires)
        expected = set(map(_PLACE, wires)) == set(map(_PLACE, entries))
        assert same_places(wires, from_packed(entries)) is expected


def test_pack_columns_are_iter_packs_entries() -> None:
    small, large = MasterIndex(), MasterIndex()
    packs = [
        (
            bytes([c]) * 32,
            b"e" * 17,
            [PackedBlob(DATA, os.urandom(32), o * 10, 10, 12, bool(o % 2)) for o in range(n)],
        )
        for c, n in ((1, 30), (2, 1), (3, 70_000))
    ]
    small.add_index_file(encode_index(packs[:2]))
    large.add_index_file(encode_index(packs))
    large.add_index_file(encode_index(packs[1:2]))  # pack 2 in two index files: its entry comes once
    for idx in (small, large):
        assert idx._segments if idx is large else not idx._segments
        by_objects = dict(idx.iter_packs())
        by_columns = {pid: to_packed(cols) for pid, cols in idx.iter_pack_columns()}
        assert by_columns == by_objects and list(by_objects) == [p[0] for p in packs[: len(by_objects)]]
    assert list(MasterIndex().iter_pack_columns()) == []


def test_check_names_a_pack_whose_index_entries_disagree_with_its_header(repo: Repository) -> None:
    save_snapshot(repo, [(b"top", [(b"d", [(b"f", b"content")])])])
    assert Checker(repo).run().ok
    repo.load_index()
    pid, entries = next(iter(repo.index.iter_packs()))
    # an index file naming one of the pack's blobs again, one byte further on: the sets differ
    e = entries[0]
    loc = repo.index.lookup(e.id)
    assert loc is not None
    repo.save_file(FileType.INDEX, encode_index([(pid, loc.envelope, [e._replace(offset=e.offset + 1)])]))
    result = Checker(Repository.open(repo.backend, PASSWORD)).run()
    assert f"pack {pid.hex()[:16]}: header and index disagree" in result.errors
    assert not result.ok
