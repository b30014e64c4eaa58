"""A backend that fails on purpose: the test double for fault-injection tests and ``backend validate``.

:class:`FaultyBackend` wraps a real backend and applies :class:`Fault` rules. Each rule counts the calls it
matches (by operation and, optionally, file type) and fires on matching calls number ``at`` to
``at + times - 1`` (1-based). What firing does depends on :class:`FaultKind`:

* ``FAIL``: raise a BackendError (``transient=True`` makes it a :class:`TransientBackendError`);
  nothing is written.
* ``TIMEOUT``: raise a transient "timed out" error; nothing is written.
* ``PARTIAL``: a save writes the first half of the bytes under the *final* name, then raises (transient or
  not, per ``transient``) — the behaviour of a storage without atomic writes, to prove that callers never
  use half-written files. A load returns the first half of what was asked for (a broken storage). Any
  other operation just fails.
* ``ENOSPC``: raise the "no space left" BackendError a full disk gives; nothing is written.
* ``CORRUPT``: a save stores the bytes with one bit flipped and reports success; a load returns the bytes
  with one bit flipped. Other operations are not affected.

Every fired fault is recorded in :attr:`FaultyBackend.injected`; :attr:`FaultyBackend.calls` counts calls
per operation.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from safehold.backends.base import Backend, FileInfo, FileType, Handle, TransientBackendError
from safehold.backends.wrappers import WrapperBackend
from safehold.errors import BackendError

#: Every operation a rule can count.
ALL_OPS = frozenset({"create", "exists", "save", "load", "stat", "list", "remove"})


class FaultKind(enum.Enum):
    FAIL = "fail"
    TIMEOUT = "timeout"
    PARTIAL = "partial"
    ENOSPC = "enospc"
    CORRUPT = "corrupt"


@dataclass
class Fault:
    """Fire ``kind`` on matching calls ``at`` .. ``at + times - 1`` (1-based; ``times=0`` means forever).

    ``ops`` are the operations counted (default: only ``save``; :data:`ALL_OPS` for every call);
    ``types``, when given, limits matching to handles of those file types (and listings of them).
    """

    kind: FaultKind
    at: int = 1
    times: int = 1
    ops: frozenset[str] = frozenset({"save"})
    types: frozenset[FileType] | None = None
    transient: bool = True
    seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        unknown = set(self.ops) - ALL_OPS
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}")
        if self.at < 1 or self.times < 0:
            raise ValueError("at must be >= 1 and times >= 0")

    def matches(self, op: str, t: FileType | None) -> bool:
        return op in self.ops and (self.types is None or t is None or t in self.types)

    def count(self) -> bool:
        """Count one matching call; True when this call is one that fails."""
        self.seen += 1
        return self.seen >= self.at and (self.times == 0 or self.seen < self.at + self.times)


@dataclass(frozen=True)
class Injected:
    """One fault that fired: the operation, what it concerned and the kind."""

    op: str
    what: str
    kind: FaultKind
    call: int


class FaultyBackend(WrapperBackend):
    """Wraps ``inner`` and injects ``faults`` (more can be added with :meth:`add`)."""

    def __init__(self, inner: Backend, faults: Iterable[Fault] = ()) -> None:
        super().__init__(inner)
        self.faults: list[Fault] = list(faults)
        self.calls: Counter[str] = Counter()
        self.injected: list[Injected] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _fire(self, op: str, t: FileType | None, what: str) -> tuple[FaultKind | None, bool]:
        """Count the call; the kind (and transience) of the first rule that fires on it, if any.

        Raises the injected error itself for the kinds that only raise.
        """
        transient = True
        with self._lock:
            self.calls[op] += 1
            fired: FaultKind | None = None
            for f in self.faults:
                if f.matches(op, t) and f.count() and fired is None:
                    fired = f.kind
                    transient = f.transient
            if fired is None:
                return None, transient
            self.injected.append(Injected(op, what, fired, self.calls[op]))
        if fired is FaultKind.FAIL:
            raise _failure(f"injected failure of {op} {what}", transient)
        if fired is FaultKind.TIMEOUT:
            raise TransientBackendError(f"injected timeout: {op} {what} timed out")
        if fired is FaultKind.ENOSPC:
            raise BackendError(
                f"no space left while writing {what} (injected)",
                hint=f"Free space on {self.properties.location}, then run the command again.",
            )
        if fired is FaultKind.PARTIAL and op not in ("save", "load"):
            raise _failure(f"injected failure of {op} {what}", transient)
        return fired, transient

    def create(self) -> None:
        self._fire("create", None, "repository")
        self.inner.create()

    def exists(self) -> bool:
        self._fire("exists", FileType.CONFIG, "config")
        return self.inner.exists()

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        kind, transient = self._fire("save", h.type, str(h))
        if kind is FaultKind.PARTIAL:
            blob = bytes(data)
            self.inner.save(h, blob[: len(blob) // 2])
            raise _failure(f"injected: connection lost after writing part of {h}", transient)
        if kind is FaultKind.CORRUPT:
            self.inner.save(h, _flip(bytes(data)))
            return
        self.inner.save(h, data)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        kind, _ = self._fire("load", h.type, str(h))
        data = self.inner.load(h, offset, length)
        if kind is FaultKind.PARTIAL:
            return data[: len(data) // 2]
        if kind is FaultKind.CORRUPT:
            return _flip(data)
        return data

    def stat(self, h: Handle) -> FileInfo:
        self._fire("stat", h.type, str(h))
        return self.inner.stat(h)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        self._fire("list", t, t.folder)
        return self.inner.list(t)

    def remove(self, h: Handle) -> None:
        self._fire("remove", h.type, str(h))
        self.inner.remove(h)


def _failure(message: str, transient: bool) -> BackendError:
    return TransientBackendError(message) if transient else BackendError(message)


def _flip(data: bytes) -> bytes:
    """``data`` with one bit flipped in the middle (empty data stays empty)."""
    if not data:
        return data
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
