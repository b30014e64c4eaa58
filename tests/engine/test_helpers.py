"""Helper processes (sealing, checking), spooled packs and the reusable chunking window."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pyfastcdc
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.backends.memory import MemoryBackend
from safehold.backends.spool import TempSpool, open_spool
from safehold.backends.wrappers import ReadOnlyBackend
from safehold.engine.backup.chunker import Chunker
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.crypto import NONCE_LEN, Session, blob_ad
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.sealer import SealerError
from safehold.errors import SafeholdError
from tests.helpers.fixtures import PASSWORD


def _blobs(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = rng.choice([10, 3000, 70_000, 600_000])
        # half compressible, half not
        out.append((b"row %d " % i) * (size // 8) if i % 2 else rng.randbytes(size))
    return out


def test_helper_processes_write_blobs_that_read_back(repo: Repository) -> None:
    w = BlobWriter(repo, process_after=0)
    blobs = _blobs(60, 1)
    ids = [w.save_blob(DATA if i % 7 else TREE, b) for i, b in enumerate(blobs)]
    w.flush()
    assert len(w._sealers) == 2  # the helpers did the sealing
    assert w.stats.blobs_new == len(set(ids))
    for i, (blob_id, data) in enumerate(zip(ids, blobs, strict=True)):
        assert repo.load_blob(DATA if i % 7 else TREE, blob_id) == data


def test_submit_queues_while_the_helper_does_not_read_and_close_waits_for_every_reply() -> None:
    """The caller goes on while a helper's pipe is full (a sending thread writes it); a view the caller
    reuses after submit is sent as it was; close(wait=True) sends and collects everything queued."""
    import signal
    import threading

    from safehold.engine.format.sealer import Item, Sealed, SealerProcess

    session = Session(os.urandom(32))
    id_key = os.urandom(32)
    results: list[tuple[list[Sealed], bytearray]] = []
    errors: list[BaseException] = []
    sp = SealerProcess(session, 1, id_key, 3, lambda m, p: results.append((m, p)), errors.append)
    os.kill(sp._proc.pid, signal.SIGSTOP)  # reads nothing until SIGCONT
    window = bytearray(os.urandom(3 * 1024 * 1024))
    blobs = []
    done = threading.Event()

    def feed() -> None:
        for k in range(8):  # 8 x 3 MiB: far more than the pipe holds
            view = memoryview(window)
            blobs.append(bytes(view))
            sp.submit([Item(DATA, blob_id(id_key, blobs[-1]), view, False)])
            window[:16] = os.urandom(16)  # the caller reuses its window at once
        done.set()

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        assert done.wait(20), "submit blocked on the helper's full pipe"
    finally:
        os.kill(sp._proc.pid, signal.SIGCONT)
    sp.close(wait=True)
    t.join()
    assert not errors
    assert [m[0].id for m, _ in results] == [blob_id(id_key, b) for b in blobs]
    for (metas, payload), data in zip(results, blobs, strict=True):
        (m,) = metas
        plain = session.open(bytes(payload), blob_ad(DATA, m.id))
        assert (zstandard.ZstdDecompressor().decompress(plain) if m.compressed else plain) == data


def blob_id(key: bytes, data: bytes) -> bytes:
    import blake3

    return blake3.blake3(data, key=key).digest()


def test_nonce_partitions_never_overlap() -> None:
    base = Session(os.urandom(32))
    parts = [base] + [Session.partition(base.session_id, base.key, p) for p in (1, 2)]
    nonces = [s.seal(b"x", b"ad")[:NONCE_LEN] for s in parts for _ in range(3)]
    assert len(set(nonces)) == len(nonces)
    for s in parts:  # every partition's ciphertext opens with the pack's (base) session
        assert base.open(s.seal(b"payload", b"ad"), b"ad") == b"payload"
    with pytest.raises(ValueError):
        Session.partition(base.session_id, base.key, 0)


def test_a_helper_that_dies_fails_the_writer(repo: Repository) -> None:
    w = BlobWriter(repo, process_after=0)
    w.save_blob(DATA, os.urandom(100_000))
    w._sealers[0]._proc.kill()
    w._sealers[1]._proc.kill()
    with pytest.raises(SafeholdError) as e:
        for b in _blobs(40, 2):
            w.save_blob(DATA, b)
        w.flush()
    assert isinstance(e.value, SealerError) and "exited unexpectedly" in str(e.value)
    w.abort()
    assert list(repo.backend.list(FileType.INDEX)) == []  # nothing indexed, nothing claimed


def test_local_spool_commits_by_rename_and_discard_leaves_nothing(tmp_path: Path) -> None:
    be = LocalBackend(str(tmp_path / "r"))
    be.create()
    sp = open_spool(be, FileType.DATA)
    sp.write(b"abc")
    sp.write(memoryview(b"def"))
    assert sp.digest() == hashlib.sha256(b"abcdef").digest() and sp.size == 6
    h = Handle(FileType.DATA, sp.digest().hex())
    sp.commit(h)
    assert be.load(h) == b"abcdef"
    gone = open_spool(be, FileType.DATA)
    gone.write(b"x" * 100)
    gone.discard()
    gone.discard()
    leftovers = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert leftovers == [tmp_path / "r" / h.path()]


def test_temp_spool_goes_through_the_wrappers() -> None:
    inner = MemoryBackend()
    ro = ReadOnlyBackend(inner)
    sp = open_spool(ro, FileType.DATA)
    assert isinstance(sp, TempSpool)  # a read-only wrapper must not be bypassed
    sp.write(b"data")
    with pytest.raises(SafeholdError):
        sp.commit(Handle(FileType.DATA, sp.digest().hex()))
    assert list(inner.list(FileType.DATA)) == []


class _Trickle(io.RawIOBase):
    """A stream that returns short reads of varying length (like a pipe)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._rng.randint(1, 5000), len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=0, max_size=2000),
    st.integers(0, 200_000),
    st.integers(0, 2**31),
    st.sampled_from(["random", "zeros", "mixed"]),
)
def test_stream_chunks_equal_whole_buffer_chunks(head: bytes, size: int, seed: int, kind: str) -> None:
    rng = random.Random(seed)
    if kind == "random":
        body = rng.randbytes(size)
    elif kind == "zeros":  # no natural cut: every chunk is cut at max_size
        body = bytes(size)
    else:  # runs of zeros (max-size cuts) between random stretches (natural cuts)
        body = b"".join(
            rng.randbytes(rng.randint(0, 30_000)) + bytes(rng.randint(0, 40_000)) for _ in range(6)
        )
        body = body[:size]
    data = head + body
    ch = Chunker(4096, 1024, 16384, seed=seed % 1000)
    whole = [bytes(c) for c in ch.cut(data)] if data else []
    reference = (
        [
            bytes(c.data)
            for c in pyfastcdc.FastCDC(4096, min_size=1024, max_size=16384, seed=seed % 1000).cut_buf(data)
        ]
        if len(data) > 1024
        else whole
    )
    streamed = [bytes(c) for c in ch.stream(_Trickle(data, seed).readinto)]  # views: copy each
    assert b"".join(streamed) == data
    assert streamed == whole == reference
    assert [bytes(c) for c in ch.stream(_Trickle(data, seed + 1).readinto)] == streamed  # reusable window


def test_check_in_helper_processes_finds_a_flipped_bit(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safehold.engine.check import checker as checker_mod
    from safehold.engine.check.checker import Checker

    repo.config.pack_size = 64 * 1024  # many packs
    w = BlobWriter(repo)
    for b in _blobs(40, 3):
        w.save_blob(DATA, b)
    w.flush()
    monkeypatch.setattr(checker_mod, "HELPERS_FROM", 1)
    started: list[object] = []
    real = checker_mod.VerifierProcess

    def counting(*a: object) -> object:
        vp = real(*a)  # type: ignore[arg-type]
        started.append(vp)
        return vp

    monkeypatch.setattr(checker_mod, "VerifierProcess", counting)
    clean = Checker(repo).run(read_data=True)
    assert (
        clean.ok and clean.packs_read >= 4 and len(started) == 1
    )  # workers - 1: one reader proves in-process
    packs = sorted(p for p in (Path(repo.backend.properties.location) / "data").rglob("*") if p.is_file())
    victim = packs[len(packs) // 2]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    victim.chmod(0o600)
    victim.write_bytes(bytes(raw))
    fresh = Repository.open(repo.backend, PASSWORD)
    found = Checker(fresh).run(read_data=True)
    assert not found.ok
    assert any(victim.name[:16] in e and "does not match its name" in e for e in found.errors), found.errors


def test_a_blob_that_does_not_read_back_in_a_helper_fails_the_writer(repo: Repository) -> None:
    from safehold.errors import IntegrityError

    w = BlobWriter(repo, process_after=0)
    data = os.urandom(200_000)
    wrong_id = bytes(32)  # not the id of data: the helper's decrypt-and-rehash check must refuse it
    assert w.reserve(wrong_id)
    w.submit(DATA, wrong_id, data)
    with pytest.raises(IntegrityError, match="did not read back"):
        for b in _blobs(30, 4):
            w.save_blob(DATA, b)
        w.flush()
    w.abort()
    assert list(repo.backend.list(FileType.INDEX)) == []
    assert list(repo.backend.list(FileType.DATA)) == []


def test_pack_proof_in_parts_of_any_size_equals_the_whole_and_finds_every_flipped_bit(
    repo: Repository,
) -> None:
    """check --read-data feeds a pack in parts: whatever the cut, a good pack proves every blob, and a
    flipped bit anywhere (blob, gap, header, trailer) is found."""
    from safehold.engine.format.blobproof import PackProof, read_tail

    repo.config.pack_size = 3 * 1024 * 1024
    w = BlobWriter(repo, process_after=None)
    for b in _blobs(40, 5):
        w.save_blob(DATA, b)
    w.flush()
    packs = sorted(p for p in (Path(repo.backend.properties.location) / "data").rglob("*") if p.is_file())
    raw = max(packs, key=lambda p: p.stat().st_size).read_bytes()
    name = hashlib.sha256(raw).hexdigest()
    nblobs = len(repo.read_pack_header(name, len(raw))[1])
    assert nblobs > 3

    def prove(data: bytes, seed: int) -> tuple[list[str], int]:
        rng = random.Random(seed)
        tail = read_tail(lambda off, n: data[off : off + n], len(data))
        proof = PackProof(repo.sessions, repo.keys.blob_id, repo.decompressor(), name, len(data), tail)
        pos = 0
        while pos < len(data):
            n = rng.choice([1, 7, 4096, 300_000, 1 << 20, len(data)])
            proof.feed(memoryview(data)[pos : pos + n] if seed % 2 else data[pos : pos + n])
            pos += n
        return proof.finish()

    for seed in range(6):
        assert prove(raw, seed) == ([], nblobs)
    rng = random.Random(9)
    for where in [0, len(raw) // 2, len(raw) - 100, len(raw) - 1, *rng.sample(range(len(raw)), 5)]:
        bad = bytearray(raw)
        bad[where] ^= 0x01
        errs, proven = prove(bytes(bad), where)
        assert errs and "does not match its name" in errs[0], where
        assert proven < nblobs or any("header" in e for e in errs), (where, errs)
    errs, proven = prove(raw[:-10], 1)  # truncated: the trailer is gone
    assert proven == 0 and any("header unreadable" in e for e in errs)


@pytest.mark.parametrize("process_after", [None, 0, 3 * 1024 * 1024], ids=["threads", "helpers", "both"])
def test_streamed_chunks_are_views_the_writer_copies_when_it_keeps_them(
    repo: Repository, process_after: int | None
) -> None:
    """The stream chunker yields views into a window it refills: batches and sealing threads must keep
    copies, helpers get the bytes before the window moves; every blob reads back as the input."""
    from safehold.engine.backup.archiver import Archiver

    cfg = repo.config
    cfg.min_size, cfg.avg_size, cfg.max_size = 16 * 1024, 64 * 1024, 256 * 1024  # many windows
    rng = random.Random(11)
    data = b"".join(
        rng.randbytes(rng.randint(1, 300_000)) + bytes(rng.randint(0, 600_000)) for _ in range(12)
    )  # natural cuts, max-size cuts and a last chunk below SMALL_BLOB
    w = BlobWriter(repo, process_after=process_after)
    result = Archiver(repo, w).stream_node(b"dump.sql", io.BytesIO(data + b"tail"))
    w.flush()
    assert result.size == len(data) + 4
    assert b"".join(repo.load_blob(DATA, b) for b in result.node.content) == data + b"tail"


def test_helper_processes_do_not_import_what_only_the_parent_needs() -> None:
    """Every module a helper imports costs memory in each helper: no subprocess, no ctypes.util; and
    malloc tuning still finds glibc without ctypes.util."""
    import subprocess
    import sys

    code = (
        "import sys, safehold.engine.format.sealer, safehold.engine.format.blobproof, safehold.engine.restore.extractor\n"
        "from safehold.engine import memtune\n"
        "memtune.tune_malloc()\n"
        "print(sorted({'subprocess', 'ctypes.util'} & set(sys.modules)), memtune._libc is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True"], out
