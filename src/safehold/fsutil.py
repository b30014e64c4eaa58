"""File-system helpers every layer may use: durable atomic writes, private folders, pipe buffers.

* :class:`AtomicFile` / :func:`atomic_write` — a file appears under its final name whole or not at all.
  It is created exclusively (``O_EXCL | O_NOFOLLOW``: never through a planted symlink) under a temporary
  name in the destination's folder, mode 0600 while it is written, then fsynced, given its final mode,
  renamed over the final name and the folder fsynced, so that the rename survives a power cut. Anything
  that goes wrong before the rename removes the temporary file; the old file (if any) is untouched.
* :func:`fsync_dir` — make a folder's entries (a rename, a new file) durable; file systems that cannot
  fsync a folder are tolerated.
* :func:`private_dir` — a temporary folder only the current user can enter, removed afterwards (and, when
  a killed process could not remove it, by the next one: :func:`sweep_private_dirs`).
* :func:`grow_pipe` — a larger pipe buffer (fewer, larger reads and writes).

This module imports only the standard library: the engine's helper processes import it (for
:func:`grow_pipe`), and they must stay small.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

_F_SETPIPE_SZ = 1031  # Linux
_F_GETPIPE_SZ = 1032
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


#: A private folder whose owner is gone is removed by the next :func:`private_dir` of its kind once it
#: is this old (seconds since it last changed): a margin for clocks and for process-id namespaces.
STALE_AFTER = 600.0


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot, ``/proc/PID/stat`` field 22), or None
    when there is no such process (or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start: int) -> bool:
    """Is the process that made a private folder still running (the same process: pid and start time)?
    Without ``/proc`` nothing can be told apart: everything counts as alive."""
    if not os.path.isdir("/proc/self"):
        return True
    return _start_time(pid) == start


@contextlib.contextmanager
def private_dir(prefix: str = "safehold-") -> Iterator[Path]:
    """A temporary folder only the current user can enter; removed with its content afterwards.

    Its name is ``<prefix><pid>.<start time>-<random>``: a folder that a killed process left behind (its
    removal never ran: a MySQL option file holding a password, a copy of a database) is removed by the
    next :func:`private_dir` with the same prefix (:func:`sweep_private_dirs`).
    """
    sweep_private_dirs(prefix)
    pid = os.getpid()
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}.{_start_time(pid) or 0}-"))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_private_dirs(
    prefix: str, *, folder: str | None = None, older_than: float = STALE_AFTER
) -> list[str]:
    """Remove the folders :func:`private_dir` made with ``prefix`` in the temporary folder (``folder``)
    whose process is gone; the names removed. The temporary folder is writable by everyone, so only a
    folder that is certainly ours is touched: a real folder (never a symlink: looked at with ``lstat``
    relative to the temporary folder's descriptor), owned by this user, private (no group or other
    permission), named by the pattern, unchanged for ``older_than`` seconds, whose process (pid and start
    time) no longer runs. It is removed with :func:`shutil.rmtree` relative to the same descriptor (which
    never follows a symlink inside it). Errors are ignored: a sweep never fails the caller."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.(\d+)-[A-Za-z0-9_]+")
    removed: list[str] = []
    try:
        dfd = os.open(folder or tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return removed
    try:
        with os.scandir(dfd) as it:
            names = [e.name for e in it if e.name.startswith(prefix)]
        now = time.time()
        for name in names:
            m = pattern.fullmatch(name)
            if m is None:
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            mine = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077
            if not mine or now - st.st_mtime < older_than or _alive(int(m[1]), int(m[2])):
                continue
            try:
                shutil.rmtree(name, dir_fd=dfd)
            except OSError:
                continue
            removed.append(name)
    finally:
        os.close(dfd)
    return removed


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """Ask for a larger pipe buffer (fewer, larger reads and writes); harmless where it is refused.
    Returns the pipe's buffer size afterwards (0 when unknown: not a pipe, or not Linux)."""
    try:
        return int(fcntl.fcntl(fd, _F_SETPIPE_SZ, size))
    except OSError:
        pass
    try:
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except OSError:
        return 0
