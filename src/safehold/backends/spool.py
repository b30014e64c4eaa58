"""Spools: a repository file written piece by piece to local disk, then saved under its final name.

Pack files are the largest things a backup writes (~16 MiB each, several open and several uploading at
once). Holding them in memory would cost a hundred MiB of resident memory for bytes that are only
waiting; a spool keeps them in the page cache instead. The writer appends sealed blobs with
:meth:`Spool.write` (the SHA-256 that names the file is computed on the way), and :meth:`Spool.commit`
saves the finished file:

* :class:`TempSpool` (every backend): an unlinked temporary file in ``$TMPDIR``; ``commit`` maps it
  and calls the backend's ``save`` (through every wrapper: retry, limit, read-only, dry-run, faults).
* a backend's own ``spool()`` (the local backend): the temporary file is created next to its final place
  and ``commit`` is fsync + rename + folder fsync, so the bytes are written once and never copied.

:func:`open_spool` picks one. A spool that is neither committed nor discarded leaves at most an unlisted
temporary file (``.tmp-*`` in a local repository, nothing at all under ``$TMPDIR``).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from typing import Protocol

from safehold.backends.base import Backend, FileType, Handle


class Spool(Protocol):
    """A file being written; it becomes one repository file on :meth:`commit`."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes:
        """SHA-256 of everything written so far."""
        ...

    def commit(self, h: Handle) -> None:
        """Save the bytes as ``h`` (durably, as ``Backend.save`` would) and release the spool."""
        ...

    def discard(self) -> None:
        """Drop the bytes; safe to call more than once and after :meth:`commit`."""
        ...


class FileSpool:
    """Appends to an open file descriptor and hashes what it writes (the part every spool shares)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._sha = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._sha.update(view)
        n = len(view)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += n

    def digest(self) -> bytes:
        return self._sha.digest()

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class TempSpool(FileSpool):
    """An unlinked temporary file; :meth:`commit` hands a read-only mapping of it to ``backend.save``."""

    def __init__(self, backend: Backend) -> None:
        fd, path = tempfile.mkstemp(prefix="safehold-spool-")
        os.unlink(path)
        super().__init__(fd)
        self._backend = backend

    def commit(self, h: Handle) -> None:
        try:
            with mmap.mmap(self._fd, self._size, prot=mmap.PROT_READ) as mm:
                view = memoryview(mm)
                try:
                    self._backend.save(h, view)
                finally:
                    view.release()
        finally:
            self._close()

    def discard(self) -> None:
        self._close()


class SupportsSpool(Protocol):
    def spool(self, t: FileType) -> Spool: ...


def open_spool(backend: Backend, t: FileType) -> Spool:
    """A spool for one file of type ``t`` that ``backend`` will hold.

    The backend's own spool is used only when nothing between the caller and it changes what a save
    does (retry and connection limits do not matter for a rename on local disk; read-only, dry-run and
    fault-injecting wrappers do, so under them the generic :class:`TempSpool` goes through ``save``).
    """
    from safehold.backends.wrappers import LimitBackend, RetryBackend

    inner = backend
    while isinstance(inner, RetryBackend | LimitBackend):
        inner = inner.inner
    native = getattr(inner, "spool", None)
    if native is not None:
        spool: Spool = native(t)
        return spool
    return TempSpool(backend)
