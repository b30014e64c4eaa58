"""Repository locks as leases.

A lock file (``locks/<random id>``, the only mutable kind of file) says who holds it, whether it is
exclusive, and when its holder last refreshed it. Backups and checks take a *shared* lock; operations that
delete (prune, forget, key remove, unlock --remove-all) take an *exclusive* one.

* The holder refreshes its lease every ``lease/3`` seconds from a background thread. If a refresh fails,
  or the lease ran out before a refresh succeeded, the lock is *lost*: :meth:`Lock.check` raises
  :class:`~safehold.errors.LockLost` and the operation aborts before writing anything that assumed it
  was protected (an exclusive holder may already consider the lock stale).
* A lock is *stale* when its lease expired (refreshed + lease + grace < now), or when it was taken on
  this host by a process that no longer exists.
* Taking a lock: list locks, fail on a conflicting live one, write ours, list again and back off if a
  conflicting one appeared meanwhile (two writers racing both see each other; both back off).
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
from typing import Any

from safehold.backends.base import Backend, FileType, Handle
from safehold.engine.crypto import SessionCache, open_file, seal_file
from safehold.errors import IntegrityError, LockLost, NotFoundError, RepositoryLocked, SafeholdError

DEFAULT_LEASE = 300.0
_LABEL = b"lock"
GRACE = 30.0


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
        self, backend: Backend, key: bytes, sessions: SessionCache, exclusive: bool, operation: str
    ) -> None:
        self.backend = backend
        self._key = key
        self._sessions = sessions
        self.lease = lease_seconds()
        now = time.time()
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
        self._lost: str | None = None
        self._last_ok = time.monotonic()
        self._thread: threading.Thread | None = None

    @property
    def handle(self) -> Handle:
        return Handle(FileType.LOCK, self.info.name)

    def _write(self) -> None:
        d = {k: v for k, v in self.info.__dict__.items() if k != "name"}
        self.backend.save(self.handle, seal_file(self._key, json.dumps(d).encode(), _LABEL))

    def _refresh_loop(self) -> None:
        interval = max(self.lease / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.info.refreshed = time.time()
                self._write()
                self._last_ok = time.monotonic()
            except (SafeholdError, OSError) as exc:
                if time.monotonic() - self._last_ok > self.lease:
                    self._lost = f"lock lease expired and could not be refreshed: {exc}"
                    return
            if time.monotonic() - self._last_ok > self.lease:
                self._lost = "lock lease expired before it could be refreshed"
                return

    def check(self) -> None:
        """Raise LockLost when the lease could not be kept; call before writing anything important."""
        if self._lost is None and time.monotonic() - self._last_ok > self.lease:
            self._lost = "lock lease expired before it could be refreshed"
        if self._lost is not None:
            raise LockLost(self._lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
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
) -> Lock:
    """Take a lock, waiting up to ``wait`` seconds for conflicting locks to go away."""
    deadline = time.monotonic() + wait
    while True:
        lock = Lock(backend, key, sessions, exclusive, operation)
        conflict = _conflicts(lock.info, read_locks(backend, key, sessions))
        if not conflict:
            lock._write()
            conflict = _conflicts(lock.info, read_locks(backend, key, sessions))
            if not conflict:
                lock._last_ok = time.monotonic()
                lock._thread = threading.Thread(target=lock._refresh_loop, name="safehold-lock", daemon=True)
                lock._thread.start()
                return lock
            with contextlib.suppress(SafeholdError, OSError):
                backend.remove(lock.handle)
        if time.monotonic() >= deadline:
            raise RepositoryLocked(f"repository is locked: {conflict[0].describe()}")
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())) + (os.getpid() % 7) / 100)
