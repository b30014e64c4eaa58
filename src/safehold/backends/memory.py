"""An in-memory backend: the reference implementation of the contract and the tests' workhorse.

Thread-safe; honours every guarantee of :mod:`safehold.backends.base` (a save is one dict assignment under
a lock, so it is atomic; loads see every completed save).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from safehold.backends._util import check_handle, check_scratch_name, resolve_range
from safehold.backends.base import BackendProperties, FileInfo, FileType, Handle
from safehold.errors import NotFoundError


class MemoryBackend:
    """Repository files in a dict keyed by :class:`Handle`.

    ``location`` names it in messages; ``connections`` is reported in :attr:`properties`. :attr:`cold`
    holds the names of data packs last saved with the ``cold`` hint (so engine tests can check which packs
    would go to an archive storage class).
    """

    def __init__(self, location: str = "mem:", connections: int = 4) -> None:
        self._files: dict[Handle, bytes] = {}
        self._mtimes: dict[Handle, float] = {}
        self.cold: set[str] = set()
        self._lock = threading.Lock()
        self._properties = BackendProperties(location=location, connections=connections, local=True)

    @property
    def properties(self) -> BackendProperties:
        return self._properties

    def create(self) -> None:
        """Nothing to prepare; idempotent."""

    def exists(self) -> bool:
        with self._lock:
            return Handle(FileType.CONFIG) in self._files

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        check_handle(h)
        blob = bytes(data)
        with self._lock:
            self._files[_key(h)] = blob
            self._mtimes[_key(h)] = time.time()
            if h.type is FileType.DATA and h.cold:
                self.cold.add(h.name)
            else:
                self.cold.discard(h.name)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        check_handle(h)
        with self._lock:
            blob = self._files.get(_key(h))
        if blob is None:
            raise NotFoundError(f"{h} does not exist in {self._properties.location}")
        start, end = resolve_range(h, len(blob), offset, length)
        return blob[start:end]

    def stat(self, h: Handle) -> FileInfo:
        check_handle(h)
        with self._lock:
            blob = self._files.get(_key(h))
        if blob is None:
            raise NotFoundError(f"{h} does not exist in {self._properties.location}")
        return FileInfo(name=_key(h).name or "config", size=len(blob))

    def list(self, t: FileType) -> Iterator[FileInfo]:
        with self._lock:
            found = [
                FileInfo(h.name or "config", len(b), self._mtimes.get(h))
                for h, b in self._files.items()
                if h.type is t
            ]
        yield from found

    def remove(self, h: Handle) -> None:
        check_handle(h)
        with self._lock:
            self._files.pop(_key(h), None)
            self._mtimes.pop(_key(h), None)
            self.cold.discard(h.name)

    def close(self) -> None:
        """Nothing to release; the files stay (a registry may hand the same backend out again)."""

    def scratch(self, name: str) -> MemoryBackend:
        """A new, separate in-memory backend (see :class:`~safehold.backends.base.SupportsScratch`)."""
        check_scratch_name(name)
        return MemoryBackend(f"{self._properties.location.rstrip('/')}/{name}", self._properties.connections)

    def drop_scratch(self, name: str) -> None:
        """Nothing to remove."""
        check_scratch_name(name)


def _key(h: Handle) -> Handle:
    """``config`` has one name whatever the handle says."""
    return Handle(FileType.CONFIG) if h.type is FileType.CONFIG else h
