"""Cross-cutting behaviour as backends that wrap a backend.

:func:`safehold.backends.registry.compose` is the one place that stacks them::

    ReadOnlyBackend | DryRunBackend      (outermost, when asked: refuse or record writes before anything)
      RetryBackend                       (transient failures: backoff with jitter, bounded)
        LimitBackend                     (at most ``properties.connections`` requests at once)
          <the real backend>

Listings are materialised inside the wrappers (one request's worth of retry and one semaphore slot for
the whole listing), so a caller may use the backend while it iterates over a listing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from safehold.backends.base import Backend, BackendProperties, FileInfo, FileType, Handle
from safehold.errors import BackendError, NotFoundError, SafeholdError

T = TypeVar("T")


class WrapperBackend:
    """Forwards every call to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def properties(self) -> BackendProperties:
        return self.inner.properties

    def create(self) -> None:
        self.inner.create()

    def exists(self) -> bool:
        return self.inner.exists()

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        self.inner.save(h, data)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.load(h, offset, length)

    def stat(self, h: Handle) -> FileInfo:
        return self.inner.stat(h)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        return self.inner.list(t)

    def remove(self, h: Handle) -> None:
        self.inner.remove(h)

    def close(self) -> None:
        self.inner.close()


def unwrap(backend: Backend) -> Backend:
    """The innermost backend under any number of wrappers."""
    while isinstance(backend, WrapperBackend):
        backend = backend.inner
    return backend


# -- retry -------------------------------------------------------------------------------------------


def is_transient(e: BaseException) -> bool:
    """True for failures worth retrying: a transient BackendError, a connection error or a timeout."""
    if isinstance(e, NotFoundError):
        return False
    if isinstance(e, BackendError):
        return bool(getattr(e, "transient", False))
    return isinstance(e, ConnectionError | TimeoutError)


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`RetryBackend` retries.

    ``attempts`` counts every try (1 = no retry). The n-th wait is ``initial_delay * multiplier**(n-1)``
    capped at ``max_delay``, then multiplied by a random factor in ``[1 - jitter, 1]``. No retry starts
    when it would end past ``max_total`` seconds after the first try.
    """

    attempts: int = 8
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5
    max_total: float = 300.0

    def delay(self, retry: int, rnd: float) -> float:
        """The wait before retry number ``retry`` (1-based) given a uniform random ``rnd`` in [0, 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        return base * (1.0 - self.jitter * rnd)


#: Called before each wait: (operation, handle or file type, failed attempt number, error, delay).
RetryHook = Callable[[str, str, int, BaseException, float], None]


class RetryBackend(WrapperBackend):
    """Retries transient failures (see :func:`is_transient`) with exponential backoff and jitter.

    Gives up after ``policy.attempts`` tries or ``policy.max_total`` seconds with a (non-transient)
    BackendError that names the operation, the number of tries and the last error. Permanent errors pass
    through at once. ``sleep``, ``clock`` and ``rng`` are injectable for tests; ``on_retry`` lets the caller
    log retries (the backend itself never prints).
    """

    def __init__(
        self,
        inner: Backend,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_retry: RetryHook | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._on_retry = on_retry

    def _run(self, op: str, what: str, fn: Callable[[], T]) -> T:
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as e:
                if not is_transient(e):
                    raise
                wait = self.policy.delay(attempt, self._rng())
                elapsed = self._clock() - start
                if attempt >= self.policy.attempts or elapsed + wait > self.policy.max_total:
                    hint = e.hint if isinstance(e, SafeholdError) else None
                    raise BackendError(
                        f"{op} {what} on {self.properties.location} failed after {attempt} "
                        f"attempt{'s' if attempt > 1 else ''} in {elapsed:.1f}s; last error: {e}",
                        hint=hint,
                    ) from e
                if self._on_retry is not None:
                    self._on_retry(op, what, attempt, e, wait)
                self._sleep(wait)

    def create(self) -> None:
        self._run("create", "repository", self.inner.create)

    def exists(self) -> bool:
        return self._run("exists", "config", self.inner.exists)

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        self._run("save", str(h), lambda: self.inner.save(h, data))

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._run("load", str(h), lambda: self.inner.load(h, offset, length))

    def stat(self, h: Handle) -> FileInfo:
        return self._run("stat", str(h), lambda: self.inner.stat(h))

    def list(self, t: FileType) -> Iterator[FileInfo]:
        return iter(self._run("list", t.folder, lambda: list(self.inner.list(t))))

    def remove(self, h: Handle) -> None:
        self._run("remove", str(h), lambda: self.inner.remove(h))


# -- concurrency limit -------------------------------------------------------------------------------


class LimitBackend(WrapperBackend):
    """At most ``connections`` (default: ``inner.properties.connections``) requests run at once."""

    def __init__(self, inner: Backend, connections: int | None = None) -> None:
        super().__init__(inner)
        self.connections = max(1, connections or inner.properties.connections)
        self._sem = threading.BoundedSemaphore(self.connections)

    def create(self) -> None:
        with self._sem:
            self.inner.create()

    def exists(self) -> bool:
        with self._sem:
            return self.inner.exists()

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        with self._sem:
            self.inner.save(h, data)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        with self._sem:
            return self.inner.load(h, offset, length)

    def stat(self, h: Handle) -> FileInfo:
        with self._sem:
            return self.inner.stat(h)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        with self._sem:
            return iter(list(self.inner.list(t)))

    def remove(self, h: Handle) -> None:
        with self._sem:
            self.inner.remove(h)


# -- read-only and dry run ---------------------------------------------------------------------------


class ReadOnlyBackend(WrapperBackend):
    """Refuses every write (create, save, remove — lock files included) with a BackendError.

    Read-only means nothing at all is written, so operations that need a lock cannot run through it.
    """

    def _refuse(self, what: str) -> BackendError:
        return BackendError(
            f"refusing to {what}: {self.properties.location} is opened read-only",
            hint="It was opened read-only on purpose; use a writable repository to change it.",
        )

    def create(self) -> None:
        raise self._refuse("create a repository")

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        raise self._refuse(f"write {h}")

    def remove(self, h: Handle) -> None:
        raise self._refuse(f"remove {h}")


@dataclass(frozen=True)
class RecordedWrite:
    """One write a :class:`DryRunBackend` skipped: ``op`` is "create", "save" or "remove"."""

    op: str
    handle: Handle | None
    size: int = 0


class DryRunBackend(WrapperBackend):
    """Records writes in :attr:`writes` and skips them; reads go to the real backend.

    Because nothing is written, a file "saved" during the dry run cannot be loaded or stat'ed afterwards:
    that raises NotFoundError saying so, and listings do not show it. A file "removed" during the dry run
    is still there. Callers that need to read back what they wrote must not run in dry-run mode past the
    planning step.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.writes: list[RecordedWrite] = []
        self._saved: set[Handle] = set()
        self._lock = threading.Lock()

    def create(self) -> None:
        with self._lock:
            self.writes.append(RecordedWrite("create", None))

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        with self._lock:
            self.writes.append(RecordedWrite("save", h, len(memoryview(data).cast("B"))))
            self._saved.add(h)

    def remove(self, h: Handle) -> None:
        with self._lock:
            self.writes.append(RecordedWrite("remove", h))

    def _check_not_pretend(self, h: Handle) -> None:
        with self._lock:
            pretend = h in self._saved
        if pretend:
            try:
                self.inner.stat(h)
                return  # it existed before the dry run
            except NotFoundError:
                raise NotFoundError(
                    f"{h} was only pretend-saved by this dry run and cannot be read back",
                    hint="Run without --dry-run to write it.",
                ) from None

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        self._check_not_pretend(h)
        return self.inner.load(h, offset, length)

    def stat(self, h: Handle) -> FileInfo:
        self._check_not_pretend(h)
        return self.inner.stat(h)
