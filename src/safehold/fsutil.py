"""File-system helpers every layer may use: durable atomic writes, private folders, pipe buffers.

* :class:`AtomicFile` / :func:`atomic_write` — a file appears under its final name whole or not at all.
  It is created exclusively (``O_EXCL | O_NOFOLLOW``: never through a planted symlink) under a temporary
  name in the destination's folder, mode 0600 while it is written, then fsynced, given its final mode,
  renamed over the final name and the folder fsynced, so that the rename survives a power cut. Anything
  that goes wrong before the rename removes the temporary file; the old file (if any) is untouched.
* :func:`fsync_dir` — make a folder's entries (a rename, a new file) durable; file systems that cannot
  fsync a folder are tolerated.
* :func:`private_dir` — a temporary folder only the current user can enter, removed afterwards.
* :func:`grow_pipe` — a larger pipe buffer (fewer, larger reads and writes).

This module imports only the standard library: the engine's helper processes import it (for
:func:`grow_pipe`), and they must stay small.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

_F_SETPIPE_SZ = 1031  # Linux
PIPE_SIZE = 1024 * 1024
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync the folder ``folder`` (its entries: renames and new files become durable).

    Raises OSError when the folder cannot be opened; a file system that refuses to fsync folders
    (EINVAL, ENOTSUP) is tolerated.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


class AtomicFile:
    """A file written under a temporary name and renamed into place by :meth:`commit`.

    Use as a context manager; leaving it without :meth:`commit` (or with an exception) removes the
    temporary file. ``path`` is the temporary file's path, for a caller that checks the content before
    committing (the SQLite restore opens it). ``parents`` creates missing folders of ``dest`` first.
    ``dir_fd``: ``dest`` is a name in the folder open as ``dir_fd`` (a folder reached without following
    a symlink someone else planted: see ``engine.fs.safedir.open_folder``); nothing is then looked up by
    path (``path`` goes through ``/proc/self/fd``). Raises OSError as the underlying calls do.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        mode: int = 0o600,
        parents: bool = False,
        dir_fd: int | None = None,
    ) -> None:
        self.dest = Path(dest)
        self.mode = mode
        self._dir_fd = dir_fd
        if dir_fd is not None and (parents or self.dest.name != os.fspath(dest) or not self.dest.name):
            raise ValueError(f"{dest!r}: with dir_fd, dest is one name in that folder")
        if parents:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.name = f".{self.dest.name}.safehold-tmp-{secrets.token_hex(6)}"
        if dir_fd is None:
            self.path = self.dest.with_name(self.name)
        else:
            self.path = Path(f"/proc/self/fd/{dir_fd}") / self.name
        self._fd = os.open(self.name if dir_fd is not None else self.path, _CREATE, 0o600, dir_fd=dir_fd)
        self.size = 0
        self._done = False

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.discard()

    def fileno(self) -> int:
        """The temporary file's descriptor (for ``fchown``, ``utime`` before :meth:`commit`)."""
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (all of it)."""
        view = memoryview(data).cast("B")
        self.size += len(view)
        while view:
            view = view[os.write(self._fd, view) :]

    def commit(self) -> None:
        """fsync, set the mode, rename over ``dest`` (replacing a file there) and fsync the folder."""
        try:
            os.fsync(self._fd)
            os.fchmod(self._fd, self.mode)
        finally:
            os.close(self._fd)
            self._fd = -1
        try:
            if self._dir_fd is None:
                os.replace(self.path, self.dest)
            else:
                os.replace(self.name, self.dest.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            self.discard()
            raise
        self._done = True
        if self._dir_fd is None:
            fsync_dir(self.dest.parent)
        else:
            _fsync_fd(self._dir_fd)

    def discard(self) -> None:
        """Remove the temporary file (safe to call more than once)."""
        self._done = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            if self._dir_fd is None:
                os.unlink(self.path)
            else:
                os.unlink(self.name, dir_fd=self._dir_fd)


def atomic_write(
    dest: str | os.PathLike[str],
    data: bytes | Iterable[bytes],
    *,
    mode: int = 0o600,
    parents: bool = False,
    dir_fd: int | None = None,
) -> int:
    """Write ``data`` (bytes, or an iterable of chunks) to ``dest`` atomically and durably (see
    :class:`AtomicFile`); returns the number of bytes written."""
    with AtomicFile(dest, mode=mode, parents=parents, dir_fd=dir_fd) as f:
        for chunk in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
            f.write(chunk)
        f.commit()
        return f.size


@contextlib.contextmanager
def private_dir(prefix: str = "safehold-") -> Iterator[Path]:
    """A temporary folder only the current user can enter; removed with its content afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Ask for a larger pipe buffer (fewer, larger reads and writes); harmless where it is refused."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    except OSError:
        pass
