"""Retry, limit, read-only and dry-run wrappers, driven by the FaultyBackend."""

from __future__ import annotations

import threading
import time

import pytest

from safehold.backends.base import Backend, BackendProperties, FileInfo, FileType, Handle
from safehold.backends.faulty import ALL_OPS, Fault, FaultKind, FaultyBackend
from safehold.backends.memory import MemoryBackend
from safehold.backends.wrappers import (
    DryRunBackend,
    LimitBackend,
    ReadOnlyBackend,
    RecordedWrite,
    RetryBackend,
    RetryPolicy,
    WrapperBackend,
    is_transient,
)
from safehold.errors import BackendError, NotFoundError
from tests.fakes.clock import FakeClock

H = Handle(FileType.DATA, "ab" * 32)


def retrying(inner: Backend, clock: FakeClock, **policy: float) -> RetryBackend:
    return RetryBackend(
        inner,
        RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=clock.sleep,
        clock=clock.clock,
        rng=lambda: 0.5,
    )


# -- retry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [FaultKind.FAIL, FaultKind.TIMEOUT, FaultKind.PARTIAL])
def test_retry_recovers_from_transient_failures(kind: FaultKind) -> None:
    mem = MemoryBackend()
    faulty = FaultyBackend(mem, [Fault(kind, at=1, times=3)])
    clock = FakeClock(start=0.0)
    hooks: list[tuple[str, int]] = []
    b = RetryBackend(
        faulty,
        RetryPolicy(attempts=5, initial_delay=1.0, multiplier=2.0, jitter=0.5),
        sleep=clock.sleep,
        clock=clock.clock,
        rng=lambda: 0.5,
        on_retry=lambda op, what, n, e, d: hooks.append((op, n)),
    )
    b.save(H, b"payload")
    assert mem.load(H) == b"payload"
    assert faulty.calls["save"] == 4
    assert clock.sleeps == [0.75, 1.5, 3.0]  # exponential, jitter factor 1 - 0.5*0.5
    assert hooks == [("save", 1), ("save", 2), ("save", 3)]


def test_retry_gives_up_after_attempts_with_clear_error() -> None:
    faulty = FaultyBackend(MemoryBackend("mem://x"), [Fault(FaultKind.TIMEOUT, times=0, ops=ALL_OPS)])
    clock = FakeClock(start=0.0)
    b = retrying(faulty, clock, attempts=4, initial_delay=0.1)
    with pytest.raises(BackendError) as e:
        b.load(H)
    assert not is_transient(e.value)
    assert "load data/ab/" in e.value.message
    assert "failed after 4 attempts" in e.value.message
    assert "timed out" in e.value.message
    assert "mem://x" in e.value.message
    assert faulty.calls["load"] == 4
    assert len(clock.sleeps) == 3


def test_retry_respects_total_time_and_max_delay() -> None:
    faulty = FaultyBackend(MemoryBackend(), [Fault(FaultKind.FAIL, times=0)])
    clock = FakeClock(start=0.0)
    b = retrying(faulty, clock, attempts=100, initial_delay=1.0, max_delay=4.0, max_total=20.0, jitter=0.0)
    with pytest.raises(BackendError, match="failed after"):
        b.save(H, b"x")
    assert clock.sleeps == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert clock.now <= 20.0


def test_permanent_errors_are_not_retried() -> None:
    faulty = FaultyBackend(MemoryBackend(), [Fault(FaultKind.FAIL, transient=False)])
    clock = FakeClock(start=0.0)
    b = retrying(faulty, clock)
    with pytest.raises(BackendError, match="injected failure"):
        b.save(H, b"x")
    assert faulty.calls["save"] == 1
    with pytest.raises(NotFoundError):
        b.load(Handle(FileType.INDEX, "00"))
    assert clock.sleeps == []


def test_retry_of_connection_errors_and_lists() -> None:
    class Flaky(WrapperBackend):
        n = 0

        def list(self, t: FileType):  # type: ignore[no-untyped-def]
            self.n += 1
            if self.n == 1:
                raise ConnectionResetError("reset by peer")

            def gen():  # type: ignore[no-untyped-def]
                yield FileInfo("a", 1)
                if self.n == 2:
                    raise TimeoutError("read timed out mid-listing")
                yield FileInfo("b", 2)

            return gen()

    inner = Flaky(MemoryBackend())
    clock = FakeClock(start=0.0)
    b = retrying(inner, clock)
    assert [f.name for f in b.list(FileType.INDEX)] == ["a", "b"]
    assert inner.n == 3


def test_is_transient() -> None:
    from safehold.backends.base import TransientBackendError

    assert is_transient(TransientBackendError("x"))
    assert is_transient(ConnectionError())
    assert is_transient(TimeoutError())
    assert not is_transient(BackendError("x"))
    assert not is_transient(OSError("x"))
    assert not is_transient(ValueError("x"))


# -- limit -------------------------------------------------------------------------------------------


def test_limit_bounds_concurrency() -> None:
    """At most ``connections`` calls at once (the guarantee), and that many do run at once: each save
    waits for two others at a barrier, which a limit of 1 or 2 would never let them reach."""
    active = 0
    peak = 0
    mutex = threading.Lock()
    together = threading.Barrier(3, timeout=10)

    class Slow(MemoryBackend):
        def save(self, h: Handle, data: bytes | memoryview) -> None:
            nonlocal active, peak
            with mutex:
                active += 1
                peak = max(peak, active)
            try:
                together.wait()
                time.sleep(0.02)  # still busy: a limit above 3 would let a fourth save in now
            finally:
                with mutex:
                    active -= 1
            super().save(h, data)

    b = LimitBackend(Slow(connections=3))
    assert b.connections == 3
    failures: list[BaseException] = []

    def save(i: int) -> None:
        try:
            b.save(Handle(FileType.DATA, f"{i:02x}" * 4), b"x")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []  # a broken barrier: fewer than 3 saves could run at once
    assert peak <= 3
    assert len(list(b.list(FileType.DATA))) == 12


def test_limit_listing_does_not_hold_a_slot() -> None:
    b = LimitBackend(MemoryBackend(connections=1))
    for i in range(3):
        b.save(Handle(FileType.INDEX, f"{i:02x}"), b"i")
    for f in b.list(FileType.INDEX):  # loading inside the listing must not deadlock
        assert b.load(Handle(FileType.INDEX, f.name)) == b"i"


# -- read-only ---------------------------------------------------------------------------------------


def test_read_only_refuses_every_write_and_reads() -> None:
    mem = MemoryBackend("mem://ro")
    mem.save(H, b"data")
    b = ReadOnlyBackend(mem)
    for call in [
        lambda: b.save(Handle(FileType.LOCK, "aa"), b"l"),
        lambda: b.remove(H),
        b.create,
    ]:
        with pytest.raises(BackendError) as e:
            call()
        assert "read-only" in e.value.message
        assert "mem://ro" in e.value.message
    assert b.load(H) == b"data"
    assert [f.name for f in b.list(FileType.DATA)] == [H.name]
    assert list(mem.list(FileType.LOCK)) == []


# -- dry run -----------------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_records() -> None:
    mem = MemoryBackend()
    mem.save(H, b"existing")
    b = DryRunBackend(mem)
    new = Handle(FileType.SNAPSHOT, "cd" * 32)
    b.create()
    b.save(new, memoryview(b"snapshot"))
    b.save(H, b"existing")
    b.remove(H)
    assert b.writes == [
        RecordedWrite("create", None),
        RecordedWrite("save", new, 8),
        RecordedWrite("save", H, 8),
        RecordedWrite("remove", H),
    ]
    assert list(mem.list(FileType.SNAPSHOT)) == []
    assert mem.load(H) == b"existing"
    assert b.load(H) == b"existing"  # existed before: still readable
    with pytest.raises(NotFoundError, match="pretend-saved"):
        b.load(new)
    with pytest.raises(NotFoundError, match="pretend-saved"):
        b.stat(new)
    assert list(b.list(FileType.SNAPSHOT)) == []


def test_wrappers_forward_properties() -> None:
    mem = MemoryBackend("mem://p", connections=5)
    for w in [RetryBackend(mem), LimitBackend(mem), ReadOnlyBackend(mem), DryRunBackend(mem)]:
        assert w.properties == BackendProperties("mem://p", connections=5, local=True)
        assert isinstance(w, Backend)
