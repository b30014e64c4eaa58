"""Unit tests of the repository format pieces: blobs, packs, index, keys, locks, files cache, trees."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehold.backends.base import FileType, Handle
from safehold.backends.memory import MemoryBackend
from safehold.backends.spool import open_spool
from safehold.engine.backup.filescache import FilesCache
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.crypto import MasterKeys, Session, SessionCache, open_file, seal_file
from safehold.engine.format.index import MasterIndex
from safehold.engine.format.indexfile import decode_index, encode_index
from safehold.engine.format.lock import read_locks
from safehold.engine.format.pack import DATA, TREE, PackBuilder, PackedBlob
from safehold.engine.format.repository import Repository
from safehold.engine.format.sealer import Sealed
from safehold.engine.format.tree import Node, decode_tree, encode_tree
from safehold.errors import IntegrityError, RepositoryExists, RepositoryLocked, WrongPassword


def test_blob_round_trip_and_binding(repo: Repository) -> None:
    w = BlobWriter(repo)
    data = os.urandom(100_000) + b"a" * 100_000
    bid = w.save_blob(DATA, data)
    tid = w.save_blob(TREE, encode_tree([]))
    w.flush()
    assert repo.load_blob(DATA, bid) == data
    with pytest.raises(IntegrityError):
        repo.load_blob(TREE, bid)  # a data blob cannot be read as a tree
    loc = repo.index.lookup(bid)
    assert loc is not None and loc.compressed and loc.raw_length == len(data)
    tloc = repo.index.lookup(tid)
    assert tloc is not None and tloc.pack_id != loc.pack_id  # trees and data live in separate packs


def test_incompressible_blob_stored_raw(repo: Repository) -> None:
    w = BlobWriter(repo)
    bid = w.save_blob(DATA, os.urandom(50_000))
    w.flush()
    loc = repo.index.lookup(bid)
    assert loc is not None and not loc.compressed


def test_nonces_never_repeat_within_a_session() -> None:
    s = Session(os.urandom(32))
    nonces = {s.seal(b"x", b"ad")[:12] for _ in range(10_000)}
    assert len(nonces) == 10_000


def test_sealed_file_rejects_wrong_label_and_tampering() -> None:
    keys = MasterKeys.generate()
    sealed = seal_file(keys.data, b"hello", b"index")
    cache = SessionCache(keys.data)
    assert open_file(cache, sealed, b"index", "x") == b"hello"
    with pytest.raises(IntegrityError):
        open_file(cache, sealed, b"snapshots", "x")
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        open_file(cache, bytes(bad), b"index", "x")


def test_pack_header_and_index_agree(repo: Repository) -> None:
    w = BlobWriter(repo)
    ids = [w.save_blob(DATA, os.urandom(1000) * 3) for _ in range(50)]
    w.flush()
    packs = list(repo.backend.list(FileType.DATA))
    assert packs
    seen = set()
    for fi in packs:
        _env, entries = repo.read_pack_header(fi.name, fi.size)
        seen |= {e.id for e in entries}
    assert set(ids) <= seen


def test_index_encoding_and_memory_per_blob() -> None:
    idx = MasterIndex()
    n = 50_000
    packs = []
    for p in range(50):
        entries = [PackedBlob(DATA, os.urandom(32), i * 100, 100, 200, True) for i in range(n // 50)]
        packs.append((os.urandom(32), os.urandom(17), entries))
    raw = encode_index(packs)
    assert decode_index(raw) == packs
    idx.add_packs(packs)
    idx.compact()
    seg = idx._segments[0]
    per_blob = (
        sum(a.nbytes for a in (seg.prefix, seg.ids, seg.pack, seg.offset, seg.length, seg.raw, seg.flags)) / n
    )
    assert per_blob < 64
    probe = packs[7][2][123]
    loc = idx.lookup(probe.id)
    assert loc is not None and loc.offset == probe.offset and loc.pack_id == packs[7][0]
    assert idx.lookup(os.urandom(32)) is None


def test_index_survives_prefix_collisions() -> None:
    idx = MasterIndex()
    base = os.urandom(8)
    entries = [PackedBlob(DATA, base + os.urandom(24), i, 1, 1, False) for i in range(20)]
    idx.add_packs([(b"p" * 32, b"e" * 17, entries)])
    for e in entries:
        loc = idx.lookup(e.id)
        assert loc is not None and loc.offset == e.offset


def test_lookup_many_equals_lookup() -> None:
    idx = MasterIndex()
    base = os.urandom(8)
    colliding = [PackedBlob(DATA, base + os.urandom(24), i, 1, 1, False) for i in range(20)]
    plain = [PackedBlob(TREE, os.urandom(32), 100 + i, 5, 9, True) for i in range(300)]
    idx.add_packs([(b"p" * 32, b"e" * 17, colliding), (b"q" * 32, b"f" * 17, plain[:150])])
    idx.add_packs([(b"r" * 32, b"g" * 17, plain[150:250])])  # a second segment
    idx.add_pack(b"s" * 32, b"h" * 17, plain[250:])  # pending, not folded yet
    unknown = [os.urandom(32), base + os.urandom(24)]
    ids = [e.id for e in colliding + plain] + unknown
    random.Random(5).shuffle(ids)
    got = idx.lookup_many(ids)
    assert got == [idx.lookup(i) for i in ids]
    assert sum(g is None for g in got) == 2 and idx.lookup_many([]) == []


def test_iter_packs_groups_every_entry_once_by_pack_and_offset() -> None:
    idx = MasterIndex()
    rng = random.Random(7)
    packs = {
        bytes([c]) * 32: [PackedBlob(rng.choice([DATA, TREE]), os.urandom(32), o * 10, 10, 12, bool(o % 2))
                          for o in rng.sample(range(500), rng.randint(1, 200))]
        for c in b"abcdef"
    }  # fmt: skip
    items = list(packs.items())
    idx.add_packs([(pid, b"e" * 17, es) for pid, es in items[:3]])
    idx.add_packs([(pid, b"e" * 17, es) for pid, es in items[2:5]])  # pack c in two index files
    for e in items[5][1]:
        idx.add_pack(items[5][0], b"e" * 17, [e])  # pending, not folded yet
    got = dict(idx.iter_packs())
    assert got == {pid: sorted(es, key=lambda e: e.offset) for pid, es in packs.items()}
    assert idx.pack_ids() == set(packs)
    assert list(MasterIndex().iter_packs()) == [] and MasterIndex().pack_ids() == set()


def test_index_folds_and_merges_keep_every_entry_findable(monkeypatch: pytest.MonkeyPatch) -> None:
    from safehold.engine.format import index as index_mod

    monkeypatch.setattr(index_mod, "_FOLD_AT", 8)
    idx = MasterIndex()
    idx.add_packs(
        [(b"B" * 32, b"e" * 17, [PackedBlob(DATA, os.urandom(32), i, 1, 1, False) for i in range(300)])]
    )
    added = []
    for p in range(120):  # many folds: recent segments merge, and outgrow the loaded one once
        es = [PackedBlob(TREE, os.urandom(32), i, 2, 3, True) for i in range(random.Random(p).randint(1, 9))]
        idx.add_pack(p.to_bytes(32, "big"), b"f" * 17, es)
        added += es
        assert len(idx._segments) <= index_mod._MAX_SEGMENTS + 1
    for e in random.Random(1).sample(added, 200):
        loc = idx.lookup(e.id)
        assert loc is not None and (loc.type, loc.offset, loc.length, loc.raw_length) == (
            TREE,
            e.offset,
            2,
            3,
        )
    assert idx.lookup_many([e.id for e in added]) == [idx.lookup(e.id) for e in added]
    assert len(idx) == 300 + len(added)


def test_keys_add_remove_and_wrong_password() -> None:
    b = MemoryBackend()
    repo = Repository.init(b, "one")
    with pytest.raises(RepositoryExists):
        Repository.init(b, "again")
    repo.add_key("two")
    assert Repository.open(b, "two").config.id == repo.config.id
    with pytest.raises(WrongPassword):
        Repository.open(b, "three")
    assert len(repo.list_keys()) == 2


def test_short_reads_of_key_and_config_are_read_again_and_a_damaged_key_is_named() -> None:
    from safehold.backends.faulty import Fault, FaultKind, FaultyBackend

    b = MemoryBackend()
    repo = Repository.init(b, "pw")
    for t in (FileType.KEY, FileType.CONFIG):  # one short read of each: read again, then it opens
        flaky = FaultyBackend(b, [Fault(FaultKind.PARTIAL, ops=frozenset({"load"}), types=frozenset({t}))])
        assert Repository.open(flaky, "pw").config.id == repo.config.id
        assert len(flaky.injected) == 1
    (name,) = [fi.name for fi in b.list(FileType.KEY)]
    raw = b.load(Handle(FileType.KEY, name))
    b.save(Handle(FileType.KEY, name), raw[:-1] + bytes([raw[-1] ^ 1]))  # damaged for good
    with pytest.raises(IntegrityError, match=rf"unusable key file.*{name[:16]} \(damaged\)") as e:
        Repository.open(b, "pw")
    assert not isinstance(e.value, WrongPassword)


def test_unknown_feature_flag_is_refused() -> None:
    import json

    b = MemoryBackend()
    repo = Repository.init(b, "pw")
    cfg = json.loads(repo.config.to_bytes())
    cfg["features"] = ["from-the-future"]
    b.save(Handle(FileType.CONFIG), seal_file(repo.keys.data, json.dumps(cfg).encode(), b"config"))
    from safehold.errors import UnsupportedRepository

    with pytest.raises(UnsupportedRepository, match="from-the-future"):
        Repository.open(b, "pw")


def test_locks_shared_exclusive_and_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    b = MemoryBackend()
    repo = Repository.init(b, "pw")
    s1 = repo.lock(exclusive=False, operation="backup")
    s2 = repo.lock(exclusive=False, operation="backup")
    with pytest.raises(RepositoryLocked):
        repo.lock(exclusive=True, operation="prune")
    s1.release()
    s2.release()
    ex = repo.lock(exclusive=True, operation="prune")
    with pytest.raises(RepositoryLocked):
        repo.lock(exclusive=False, operation="backup")
    ex.release()
    # a lock from a dead process on this host is stale
    import json
    import socket

    d = {
        "exclusive": True,
        "hostname": socket.gethostname(),
        "pid": 2**22 + 12345,
        "username": "x",
        "operation": "dead",
        "created": time.time(),
        "refreshed": time.time(),
        "lease": 300.0,
    }
    b.save(Handle(FileType.LOCK, "ab" * 32), seal_file(repo.keys.lock, json.dumps(d).encode(), b"lock"))
    infos = read_locks(b, repo.keys.lock, SessionCache(repo.keys.lock))
    assert [i.stale() for i in infos] == [True]
    repo.lock(exclusive=True, operation="prune").release()  # a stale lock does not block


def test_files_cache_ignores_racy_and_tampered_rows(tmp_path: Path) -> None:
    key = os.urandom(32)
    start = time.time_ns()
    c = FilesCache(tmp_path / "fc.sqlite", key, start)
    ids = [os.urandom(32)]
    c.record(b"/d", b"old", 10, start - 10**10, start - 10**10, 1, ids)
    c.record(b"/d", b"racy", 10, start + 1, start - 10**10, 2, ids)
    c.commit()
    c.close()
    c2 = FilesCache(tmp_path / "fc.sqlite", key, time.time_ns())
    rows = c2.lookup_dir(b"/d")
    assert set(rows) == {b"old"} and rows[b"old"][4] == ids
    c2._db.execute("UPDATE files SET size=11 WHERE name=?", (b"old",))
    assert c2.lookup_dir(b"/d") == {}
    c2.close()
    c3 = FilesCache(tmp_path / "fc.sqlite", os.urandom(32), time.time_ns())
    assert c3.lookup_dir(b"/d") == {}


names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(names, st.integers(0, 2**40), st.binary(max_size=64)), max_size=20, unique_by=lambda t: t[0]
    )
)
def test_tree_encoding_is_deterministic_and_round_trips(items: list[tuple[bytes, int, bytes]]) -> None:
    nodes = [
        Node(name=n, type="file", size=s, mtime_ns=s, content=[bytes(32)], xattrs=[(b"user.x", v)])
        for n, s, v in items
    ]
    enc = encode_tree(nodes)
    assert encode_tree(list(reversed(nodes))) == enc
    assert decode_tree(enc) == sorted(nodes, key=lambda n: n.name)


def test_malformed_tree_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        decode_tree(b"\x93\x01\x02\x03")


def test_pack_builder_spreads_over_two_open_packs(repo: Repository) -> None:
    w = BlobWriter(repo)
    assert len(w._packs[DATA]) == 2
    assert w._packs[DATA] == [None, None]  # opened on first use
    pb = PackBuilder(DATA, open_spool(repo.backend, FileType.DATA))
    pb.add([Sealed(DATA, b"x" * 32, 12, 40, False)], b"y" * 40)
    pid = pb.finish(Session(repo.keys.data))
    h = Handle(FileType.DATA, pid.hex())
    pb.spool.commit(h)
    data = repo.backend.load(h)
    assert data.startswith(b"y" * 40)
    assert hashlib.sha256(data).digest() == pid
    w.abort()


def _index_file(records: list[list[object]]) -> bytes:
    import msgpack
    import zstandard

    return zstandard.ZstdCompressor().compress(msgpack.packb([1, records], use_bin_type=True))


@pytest.fixture(params=["dict", "arrays"])
def index_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that uses it runs twice: a small index in the dict (no numpy) and in the arrays."""
    from safehold.engine.format import index as index_mod

    if request.param == "arrays":
        monkeypatch.setattr(index_mod, "_SMALL", 0)
    return str(request.param)


def test_index_file_loads_column_by_column_like_decode_index(index_path: str) -> None:
    rng = random.Random(3)
    packs = [
        (os.urandom(32), os.urandom(17),
         [PackedBlob(rng.choice([DATA, TREE]), os.urandom(32), rng.randrange(1 << 32), rng.randrange(1, 1 << 32),
                     rng.randrange(1 << 32), rng.random() < 0.5) for _ in range(rng.randint(0, 300))])
        for _ in range(7)
    ]  # fmt: skip
    raw = encode_index(packs)
    by_objects, by_columns = MasterIndex(), MasterIndex()
    by_objects.add_packs(decode_index(raw))
    by_columns.add_index_file(raw)
    ids = [e.id for _, _, es in packs for e in es] + [os.urandom(32)]
    assert by_columns.lookup_many(ids) == by_objects.lookup_many(ids)
    assert [by_columns.lookup(i) for i in ids] == [by_objects.lookup(i) for i in ids]
    assert dict(by_columns.iter_packs()) == dict(by_objects.iter_packs())
    by_columns.add_index_file(_index_file([]))  # an empty index file adds nothing
    assert len(by_columns) == len(ids) - 1
    assert by_columns.has_many(ids) == [by_objects.has(i) for i in ids]
    assert by_columns.pack_ids() == by_objects.pack_ids()
    by_columns.compact()
    assert (len(by_columns._segments) == 0) == (index_path == "dict")
    assert dict(by_columns.iter_packs()) == dict(by_objects.iter_packs())


def test_small_index_with_a_blob_stored_twice_keeps_both_copies() -> None:
    blob = os.urandom(32)
    packs = [(os.urandom(32), b"e" * 17, [PackedBlob(DATA, blob, 0, 5, 9, True)]),
             (os.urandom(32), b"f" * 17, [PackedBlob(DATA, blob, 40, 5, 9, True)])]  # fmt: skip
    by_objects = MasterIndex()
    by_objects.add_packs(packs)
    for files in ([packs], [packs[:1], packs[1:]]):  # twice in one index file, or in two
        idx = MasterIndex()
        for f in files:
            idx.add_index_file(encode_index(f))
        assert dict(idx.iter_packs()) == dict(by_objects.iter_packs()) and len(idx) == 2


def test_small_index_needs_no_numpy() -> None:
    code = """
import os, sys
from safehold.engine.format.index import MasterIndex
from safehold.engine.format.indexfile import encode_index
from safehold.engine.format.pack import PackedBlob
packs = [(os.urandom(32), b"e" * 17, [PackedBlob(0, os.urandom(32), i, 1, 2, True) for i in range(n)]) for n in (3, 0, 50)]
idx = MasterIndex()
idx.add_index_file(encode_index(packs))
idx.compact()
ids = [e.id for _, _, es in packs for e in es]
assert idx.has_many(ids) == [True] * 53 and all(idx.lookup_many(ids)) and idx.has(ids[0])
assert len(dict(idx.iter_packs())) == 2 == len(idx.pack_ids())
idx.add_pack(os.urandom(32), b"g" * 17, [PackedBlob(1, os.urandom(32), 0, 1, 1, False)])
assert len(idx) == 54
print("numpy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_path_filter_imports_pathspec_only_for_patterns() -> None:
    code = """
import sys
from safehold.engine.format.treewalk import PathFilter
f = PathFilter([], [], b"")
assert f.wanted(b"a/b", False) is True
print("pathspec" in sys.modules)
f = PathFilter(["a/*"], ["a/x"], b"")
print("pathspec" in sys.modules, f.wanted(b"a/b", False), f.wanted(b"a/x", False), f.wanted(b"c", False))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["False", "True True False None"]


def _refusal(entry: object) -> str:
    good = [0, b"g" * 32, 0, 1, 1, False]
    try:
        MasterIndex().add_index_file(_index_file([[b"p" * 32, b"e" * 17, [good, entry]]]))
    except ValueError as exc:
        return str(exc)
    raise AssertionError("accepted")


@pytest.mark.parametrize(
    "entry",
    [
        [True, b"i" * 32, 0, 1, 1, False],  # bool is not a blob type
        [7, b"i" * 32, 0, 1, 1, False],  # unknown type
        [0, b"i" * 31, 0, 1, 1, False],  # short id
        ["0", b"i" * 32, 0, 1, 1, False],
        [0, "i" * 32, 0, 1, 1, False],  # text, not bytes
        [0, b"i" * 32, -1, 1, 1, False],  # negative offset
        [0, b"i" * 32, 1 << 32, 1, 1, False],  # beyond 32 bits
        [0, b"i" * 32, 0, (1 << 64) - 1, 1, False],  # beyond int64
        [0, b"i" * 32, 0, 1.5, 1, False],  # a float length
        [0, b"i" * 32, 0, 1, True, False],  # a bool raw length
        [0, b"i" * 32, 0, 1, 1, 1],  # compressed must be a bool
        [0, b"i" * 32, 0, 1, 1],  # five fields
        (0, b"i" * 32, 0, 1, 1, False, None),  # seven fields
        "entry",
    ],
)
def test_index_file_with_a_malformed_entry_is_refused_whole(
    entry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.engine.format import index as index_mod

    in_dict = _refusal(entry)
    monkeypatch.setattr(index_mod, "_SMALL", 0)
    assert _refusal(entry) == in_dict  # the dict and the arrays refuse it with the same message
    monkeypatch.undo()
    good = [0, b"g" * 32, 0, 1, 1, False]
    idx = MasterIndex()
    with pytest.raises(ValueError):
        idx.add_index_file(_index_file([[b"p" * 32, b"e" * 17, [good, entry]]]))
    with pytest.raises(ValueError):
        idx.add_index_file(_index_file([[b"p" * 31, b"e" * 17, [good]]]))
    with pytest.raises(ValueError):
        idx.add_index_file(_index_file([[b"p" * 32, b"e" * 17, [good]], [b"q" * 32, b"e" * 17]]))
    assert len(idx) == 0 and idx.lookup(b"g" * 32) is None


def test_index_file_in_small_chunks_and_damaged_documents(
    monkeypatch: pytest.MonkeyPatch, index_path: str
) -> None:
    import msgpack
    import zstandard

    from safehold.engine.format import index as index_mod

    if index_path == "arrays":
        monkeypatch.setattr(index_mod, "_CHUNK", 7)  # chunks that end inside and across pack records
    packs = [(os.urandom(32), b"e" * 17, [PackedBlob(DATA, os.urandom(32), i, 1, 2, True) for i in range(n)])
             for n in (3, 0, 11, 7, 1)]  # fmt: skip
    idx = MasterIndex()
    idx.add_index_file(encode_index(packs))
    assert dict(idx.iter_packs()) == {pid: es for pid, _env, es in packs if es}
    assert idx.pack_ids() == {pid for pid, _env, es in packs if es} and packs[1][0] not in idx._pack_no
    doc = msgpack.packb([1, [[p, e, [x.to_wire() for x in es]] for p, e, es in packs]], use_bin_type=True)
    for bad in (doc + b"\x00", doc[:-1], msgpack.packb([2, []]), msgpack.packb({"a": 1})):
        with pytest.raises(ValueError):
            MasterIndex().add_index_file(zstandard.ZstdCompressor().compress(bad))
