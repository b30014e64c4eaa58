"""The FaultyBackend test double does what it promises, call by call."""

from __future__ import annotations

import pytest

from safehold.backends.base import FileType, Handle, TransientBackendError
from safehold.backends.faulty import ALL_OPS, Fault, FaultKind, FaultyBackend
from safehold.backends.memory import MemoryBackend
from safehold.errors import BackendError

D = Handle(FileType.DATA, "ab" * 32)
IX = Handle(FileType.INDEX, "cd" * 32)


def test_fails_only_on_call_n_counting_saves() -> None:
    mem = MemoryBackend()
    b = FaultyBackend(mem, [Fault(FaultKind.FAIL, at=2)])
    b.save(D, b"one")
    b.load(D)
    with pytest.raises(TransientBackendError):
        b.save(IX, b"two")
    assert list(mem.list(FileType.INDEX)) == []
    b.save(IX, b"two")
    assert mem.load(IX) == b"two"
    assert [(x.op, x.call, x.kind) for x in b.injected] == [("save", 2, FaultKind.FAIL)]


def test_counting_all_calls_and_filtering_types() -> None:
    mem = MemoryBackend()
    mem.save(D, b"d")
    b = FaultyBackend(mem, [Fault(FaultKind.FAIL, at=3, ops=ALL_OPS, transient=False)])
    b.stat(D)
    b.load(D)
    with pytest.raises(BackendError) as e:
        b.exists()
    assert not isinstance(e.value, TransientBackendError)

    b = FaultyBackend(mem, [Fault(FaultKind.FAIL, times=0, types=frozenset({FileType.INDEX}))])
    b.save(D, b"d")
    with pytest.raises(BackendError):
        b.save(IX, b"i")


def test_partial_save_leaves_truncated_file_under_final_name() -> None:
    mem = MemoryBackend()
    b = FaultyBackend(mem, [Fault(FaultKind.PARTIAL, transient=False)])
    with pytest.raises(BackendError, match="connection lost"):
        b.save(D, b"0123456789")
    assert mem.load(D) == b"01234"


def test_timeout_enospc_and_corrupt() -> None:
    mem = MemoryBackend("mem://full")
    b = FaultyBackend(mem)
    b.add(Fault(FaultKind.TIMEOUT, at=1))
    with pytest.raises(TransientBackendError, match="timed out"):
        b.save(D, b"x")
    b.add(Fault(FaultKind.ENOSPC, at=1))  # counts from when it is added
    with pytest.raises(BackendError) as e:
        b.save(D, b"x")
    assert not isinstance(e.value, TransientBackendError)
    assert "no space left" in e.value.message
    assert "Free space on mem://full" in e.value.hint
    assert list(mem.list(FileType.DATA)) == []

    c = FaultyBackend(
        mem, [Fault(FaultKind.CORRUPT), Fault(FaultKind.CORRUPT, at=2, ops=frozenset({"load"}))]
    )
    c.save(D, b"\x00\x00\x00")
    assert mem.load(D) == b"\x00\x01\x00"
    assert c.load(D) == b"\x00\x01\x00"
    assert c.load(D) == b"\x00\x00\x00"  # second load flips the flipped bit back


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        Fault(FaultKind.FAIL, ops=frozenset({"bogus"}))
    with pytest.raises(ValueError):
        Fault(FaultKind.FAIL, at=0)
