"""Batched index questions (what a backup of small files asks): ``MasterIndex.has_many`` answers exactly
as ``has`` does one id at a time, across segments, pending entries and ids sharing a 64-bit prefix;
``BlobWriter.reserve_many`` hands out each new id once."""

from __future__ import annotations

import os
import random

from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.index import MasterIndex
from safehold.engine.format.pack import DATA, PackedBlob
from safehold.engine.format.repository import Repository


def _entries(ids: list[bytes]) -> list[PackedBlob]:
    return [PackedBlob(DATA, b, 100 * i, 50, 60, True) for i, b in enumerate(ids)]


def test_has_many_agrees_with_has() -> None:
    rng = random.Random(7)
    prefix = os.urandom(8)
    # ids that share their first 8 bytes: the vectorised search finds only the first of them directly
    twins = [prefix + rng.randbytes(24) for _ in range(5)]
    stored = [rng.randbytes(32) for _ in range(3000)] + twins[:3]
    idx = MasterIndex()
    idx.add_packs([(b"p" * 32, b"", _entries(stored[:1500]))])  # a loaded segment
    idx.add_packs([(b"q" * 32, b"", _entries(stored[1500:2900]))])  # another one
    idx.add_pack(b"r" * 32, b"", _entries(stored[2900:]))  # pending (this session's pack)
    absent = [rng.randbytes(32) for _ in range(500)] + twins[3:] + [prefix + bytes(24)]
    asked = stored + absent
    rng.shuffle(asked)
    assert idx.has_many(asked) == [idx.has(b) for b in asked]
    assert sum(idx.has_many(asked)) == len(stored)
    assert idx.has_many([]) == []
    assert MasterIndex().has_many(absent[:3]) == [False] * 3


def test_reserve_many_gives_each_new_id_once(repo: Repository) -> None:
    known = os.urandom(32)
    repo.index.add_packs([(b"p" * 32, b"", _entries([known]))])
    writer = BlobWriter(repo)
    a, b = os.urandom(32), os.urandom(32)
    assert writer.reserve_many([a, known, a, b]) == [True, False, False, True]
    assert writer.reserve_many([b, a]) == [False, False]
    assert writer.reserve(a) is False
    writer.flush()  # nothing was submitted: no pack, no index file
    assert writer.stats.packs == 0
