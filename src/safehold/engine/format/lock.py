"""Repository locks as leases.

A lock file (``locks/<random id>``, the only mutable kind of file) says who holds it, whether it is
exclusive, and when its holder last refreshed it. Backups and checks take a *shared* lock; operations that
delete (prune, forget, key remove, unlock --remove-all) take an *exclusive* one.

* The holder refreshes its lease every ``lease/3`` seconds from a background thread. A refresh first
  reads the lock file back: when it is gone (``unlock --remove-all``, an operator) or holds other bytes
  than the holder last wrote, the lock is *lost* and is never written again (re-creating it would hide
  from a pruning process that it must not run). A lock is lost too when a refresh fails and the lease
  ran out before one succeeded.
* :meth:`Lock.check` raises :class:`~safehold.errors.LockLost` once the lock is lost. It also reads the
  lock file back itself (at most every :data:`VERIFY_EVERY` seconds), so that a removal is noticed
  before the next refresh; :meth:`Lock.confirm` always reads it back. Writers check before every pack
  and confirm before every index file and the snapshot, and the operation stops without committing
  anything that assumed the lock protected it.
* A lock is *stale* when its lease expired (refreshed + lease + grace < now), or when it was taken on
  this host by a process that no longer exists.
* Taking a lock: list locks, fail on a conflicting live one, write ours, list again and back off if a
  conflicting one appeared meanwhile (two writers racing both see each other; both back off).

Time comes from a :class:`Clock` (wall time for the lease written into the file, monotonic time for
what the holder measures), so tests drive leases with a fake clock instead of sleeping.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from safehold.backends.base import Backend, FileType, Handle
from safehold.engine.format.crypto import SessionCache, open_file, seal_file
from safehold.errors import IntegrityError, LockLost, NotFoundError, RepositoryLocked, SafeholdError

DEFAULT_LEASE = 300.0
_LABEL = b"lock"
GRACE = 30.0
#: :meth:`Lock.check` reads the lock file back at most this often (seconds); refreshes always do.
VERIFY_EVERY = 1.0
#: A read-back that differs from what we wrote is read again this often before the lock counts as lost.
REREADS = 2


class Clock(Protocol):
    """Where a lock gets its time: ``time()`` for the lease written into the file, ``monotonic()`` for
    measuring how long ago the last refresh succeeded."""

    def time(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        # Time a suspended machine slept counts: a writer paused past its lease must find it expired.
        return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_seconds() -> float:
    return float(os.environ.get("SAFEHOLD_LOCK_LEASE", DEFAULT_LEASE))


@dataclass
class LockInfo:
    name: str
    exclusive: bool
    hostname: str
    pid: int
    username: str
    operation: str
    created: float
    refreshed: float
    lease: float

    def stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now > self.refreshed + self.lease + GRACE:
            return True
        return self.hostname == socket.gethostname() and not _pid_alive(self.pid)

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        age = int(time.time() - self.created)
        return f"{kind} lock by {self.operation} (PID {self.pid} on {self.hostname}, {age}s old)"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "stale": self.stale()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_locks(backend: Backend, key: bytes, sessions: SessionCache) -> list[LockInfo]:
    """All readable locks; an unreadable lock file counts as a live exclusive lock of unknown origin."""
    out: list[LockInfo] = []
    for fi in backend.list(FileType.LOCK):
        try:
            raw = open_file(sessions, backend.load(Handle(FileType.LOCK, fi.name)), _LABEL, "lock file")
            d = json.loads(raw)
            out.append(LockInfo(name=fi.name, **d))
        except NotFoundError:
            continue
        except (IntegrityError, ValueError, TypeError):
            out.append(
                LockInfo(fi.name, True, "?", 0, "?", "unreadable lock", 0.0, time.time(), lease_seconds())
            )
    return out


class Lock:
    """A held lock with its refresh thread. Use :func:`acquire`; release with :meth:`release`."""

    def __init__(
        self,
        backend: Backend,
        key: bytes,
        sessions: SessionCache,
        exclusive: bool,
        operation: str,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self._key = key
        self._sessions = sessions
        self.clock: Clock = clock or SystemClock()
        self.lease = lease_seconds()
        now = self.clock.time()
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = ""
        self.info = LockInfo(
            name=os.urandom(32).hex(),
            exclusive=exclusive,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            username=user,
            operation=operation,
            created=now,
            refreshed=now,
            lease=self.lease,
        )
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # one refresh or verification at a time
        self._lost: str | None = None
        self._written: bytes | None = None  # the bytes of our lock file, as last saved
        self._error: Exception | None = None  # the last storage error of a refresh
        self._last_ok = self.clock.monotonic()
        self._verified = self._last_ok
        self._thread: threading.Thread | None = None

    @property
    def handle(self) -> Handle:
        return Handle(FileType.LOCK, self.info.name)

    @property
    def lost(self) -> str | None:
        """Why the lock is lost, or None while it is held."""
        return self._lost

    def _write(self) -> None:
        d = {k: v for k, v in self.info.__dict__.items() if k != "name"}
        raw = seal_file(self._key, json.dumps(d).encode(), _LABEL)
        self.backend.save(self.handle, raw)
        self._written = raw

    def _still_ours(self) -> bool | None:
        """Read the lock file back: True when it holds what we wrote, False (and the lock is lost) when
        it is gone or replaced, None when the storage could not be read."""
        try:
            current = self.backend.load(self.handle)
            for _ in range(REREADS):  # a short or damaged read is read again before it means "replaced"
                if current == self._written:
                    break
                current = self.backend.load(self.handle)
        except NotFoundError:
            self._lost = (
                f"the lock file locks/{self.info.name[:16]} was removed (by 'unlock --remove-all' or by "
                "hand) while the operation ran"
            )
            return False
        except (SafeholdError, OSError) as exc:
            self._error = exc
            return None
        if current != self._written:
            self._lost = f"the lock file locks/{self.info.name[:16]} was replaced by someone else"
            return False
        self._verified = self.clock.monotonic()
        return True

    def refresh(self) -> None:
        """One refresh: verify the lock file is still ours, then extend its lease. Never raises; a lost
        lock is reported by :meth:`check`. (The background thread calls this every ``lease/3`` s.)"""
        with self._mutex:
            if self._lost is not None:
                return
            self._error = None
            ours = self._still_ours()
            if ours is False:
                return
            if ours:  # never when the read failed: the file might be gone, and must then stay gone
                try:
                    self.info.refreshed = self.clock.time()
                    self._write()
                    self._last_ok = self.clock.monotonic()
                except (SafeholdError, OSError) as exc:
                    self._error = exc
            if self.clock.monotonic() - self._last_ok > self.lease:
                why = f": {self._error}" if self._error is not None else ""
                self._lost = f"the lock's lease expired before it could be refreshed{why}"

    def _refresh_loop(self) -> None:
        interval = max(self.lease / 3, 0.05)
        while not self._stop.wait(interval) and self._lost is None:
            self.refresh()

    def check(self) -> None:
        """Raise LockLost when the lock is lost (removed, replaced, or its lease ran out); call before
        writing anything that relies on the lock. Reads the lock file back when the last confirmation is
        older than :data:`VERIFY_EVERY` seconds."""
        with self._mutex:
            now = self.clock.monotonic()
            if self._lost is None and now - self._last_ok > self.lease:
                self._lost = "the lock's lease expired before it could be refreshed"
            if self._lost is None and now - self._verified >= VERIFY_EVERY:
                self._still_ours()
            if self._lost is not None:
                raise LockLost(self._lost)

    def confirm(self) -> None:
        """:meth:`check`, reading the lock file back now: call right before writing an index file or a
        snapshot, so that a lock removed a moment ago is noticed."""
        with self._mutex:
            if self._lost is None:
                self._still_ours()
        self.check()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lost is None:  # a lost lock file is no longer ours to remove
            with contextlib.suppress(SafeholdError, OSError):
                self.backend.remove(self.handle)


def _conflicts(mine: LockInfo, others: list[LockInfo]) -> list[LockInfo]:
    return [o for o in others if o.name != mine.name and (mine.exclusive or o.exclusive) and not o.stale()]


def acquire(
    backend: Backend,
    key: bytes,
    sessions: SessionCache,
    *,
    exclusive: bool,
    operation: str,
    wait: float = 0.0,
    clock: Clock | None = None,
) -> Lock:
    """Take a lock, waiting up to ``wait`` seconds for conflicting locks to go away."""
    deadline = time.monotonic() + wait
    while True:
        lock = Lock(backend, key, sessions, exclusive, operation, clock)
        conflict = _conflicts(lock.info, read_locks(backend, key, sessions))
        if not conflict:
            lock._write()
            conflict = _conflicts(lock.info, read_locks(backend, key, sessions))
            if not conflict:
                lock._last_ok = lock._verified = lock.clock.monotonic()
                lock._thread = threading.Thread(target=lock._refresh_loop, name="safehold-lock", daemon=True)
                lock._thread.start()
                return lock
            with contextlib.suppress(SafeholdError, OSError):
                backend.remove(lock.handle)
        if time.monotonic() >= deadline:
            other = conflict[0]
            raise RepositoryLocked(
                f"repository is locked: {other.describe()}"
                + (f"; waited {wait:g} s for it" if wait > 0 else ""),
                held=max(0.0, time.time() - other.created) if other.created else None,
                waited=wait,
            )
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())) + (os.getpid() % 7) / 100)


def remove_stale(backend: Backend, key: bytes, sessions: SessionCache, mine: Lock) -> list[LockInfo]:
    """Remove the stale locks of others (an exclusive holder does this after taking its lock): a writer
    whose lease ran out while it was paused or cut off then finds its lock file gone at its next read-back
    (:meth:`Lock.confirm`, before every index file and snapshot) and stops without committing, instead of
    committing a snapshot whose blobs the exclusive holder may have deleted. Returns what was removed."""
    removed = []
    for info in read_locks(backend, key, sessions):
        if info.name != mine.info.name and info.stale():
            with contextlib.suppress(NotFoundError):
                backend.remove(Handle(FileType.LOCK, info.name))
            removed.append(info)
    return removed
