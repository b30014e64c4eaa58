"""A repository in a local folder (or any mounted file system).

Layout (see :meth:`Handle.path`)::

    <root>/config
    <root>/keys/<id>  index/<id>  snapshots/<id>  locks/<id>
    <root>/data/<first 2 hex of id>/<id>

A save writes ``.tmp-<name>-<random>`` in the target folder, fsyncs it, renames it into place with
:func:`os.replace` and fsyncs the folder, so a crash leaves either the old state or the whole new file.
Files are created 0600 and folders 0700. Leftover temporary files (from a crash) are never listed.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from safehold.backends._util import (
    TEMP_PREFIX,
    check_handle,
    check_scratch_name,
    is_valid_name,
    resolve_range,
    temp_name,
)
from safehold.backends.base import BackendProperties, FileInfo, FileType, Handle
from safehold.backends.space import Space, local_space
from safehold.backends.spool import FileSpool
from safehold.errors import BackendError, NotFoundError
from safehold.fsutil import fsync_dir

FILE_MODE = 0o600
DIR_MODE = 0o700


class LocalBackend:
    """Repository files under ``path``; ``connections`` is the advised number of parallel requests."""

    def __init__(self, path: str | os.PathLike[str], connections: int = 2) -> None:
        self.root = Path(path).expanduser().absolute()
        self._properties = BackendProperties(location=str(self.root), connections=connections, local=True)

    @property
    def properties(self) -> BackendProperties:
        return self._properties

    # -- paths ---------------------------------------------------------------------------------------

    def _path(self, h: Handle) -> Path:
        check_handle(h)
        return self.root / h.path()

    # -- protocol ------------------------------------------------------------------------------------

    def create(self) -> None:
        """Create the root and the type folders (data subfolders and bootstrap/ come on demand). A missing
        parent is an error (an unmounted disk, a typo): :meth:`create_parents` is for ``init``. Idempotent."""
        try:
            self._mkdir(self.root)
            for t in FileType:
                if t not in (FileType.CONFIG, FileType.BOOTSTRAP):
                    self._mkdir(self.root / t.folder)
        except OSError as e:
            raise _error(e, "creating the repository folders in", self.root) from e

    def create_parents(self) -> None:
        """Create the root's missing parent folders (mode 0700, like the root): ``init --repo
        /srv/backup/x`` on a host without /srv/backup. Only a command that creates a new repository on
        purpose calls it."""
        try:
            os.makedirs(self.root.parent, DIR_MODE, exist_ok=True)
        except OSError as e:
            raise _error(e, "creating the parent folders of", self.root) from e

    def space(self) -> Space:
        """The free space and inodes of the repository's file system (see :mod:`.space`)."""
        try:
            return local_space(str(self.root))
        except OSError as e:
            raise _error(e, "reading the free space of", self.root) from e

    def exists(self) -> bool:
        return (self.root / "config").is_file()

    def _create_temp(self, folder: Path, name: str, what: str) -> tuple[int, Path]:
        """A new temporary file (mode 0600) for ``name`` in ``folder`` (created if missing): (fd, path)."""
        tmp = folder / temp_name(name)
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            except FileNotFoundError:
                self._mkdirs(folder)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise _error(e, f"creating {what} in", folder) from e
        try:
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
        except OSError as e:
            os.close(fd)
            raise _error(e, f"creating {what} in", folder) from e
        return fd, tmp

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        final = self._path(h)
        fd, tmp = self._create_temp(final.parent, final.name, f"a file for {h}")
        spool = LocalSpool(self, fd, tmp, f"{h}", final.parent)
        try:
            spool.write(data)
        except BaseException:
            spool.discard()
            raise
        spool.commit(h)

    def spool(self, t: FileType) -> LocalSpool:
        """A spool whose temporary file sits in ``t``'s folder: committing it is a rename, not a copy."""
        fd, tmp = self._create_temp(
            self.root / t.folder, f"spool-{t.name.lower()}", f"a {t.name.lower()} file"
        )
        return LocalSpool(self, fd, tmp, "a pack", self.root)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(h)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"{h} does not exist in {self.root}") from None
        except OSError as e:
            raise _error(e, f"opening {h} in", self.root) from e
        try:
            size = os.fstat(fd).st_size
            start, end = resolve_range(h, size, offset, length)
            parts: list[bytes] = []
            pos = start
            while pos < end:
                chunk = os.pread(fd, end - pos, pos)
                if not chunk:
                    raise BackendError(
                        f"short read of {h} in {self.root}: got {pos - start} of {end - start} bytes",
                        hint="The file changed or shrank while it was read; run 'safehold check'.",
                    )
                parts.append(chunk)
                pos += len(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except OSError as e:
            raise _error(e, f"reading {h} in", self.root) from e
        finally:
            os.close(fd)

    def stat(self, h: Handle) -> FileInfo:
        path = self._path(h)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFoundError(f"{h} does not exist in {self.root}") from None
        except OSError as e:
            raise _error(e, f"reading the size of {h} in", self.root) from e
        return FileInfo(name=h.name if h.type is not FileType.CONFIG else "config", size=st.st_size)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        if t is FileType.CONFIG:
            try:
                yield FileInfo("config", (self.root / "config").stat().st_size)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise _error(e, "listing", self.root) from e
            return
        top = self.root / t.folder
        folders = [top]
        if t is FileType.DATA:
            folders = [top / d for d in self._entries(top) if len(d) == 2 and (top / d).is_dir()]
        for folder in folders:
            for name in self._entries(folder):
                if name.startswith(TEMP_PREFIX) or not is_valid_name(name, t):
                    continue
                try:
                    st = (folder / name).stat()
                except FileNotFoundError:
                    continue  # removed while we listed
                except OSError as e:
                    raise _error(e, "listing", folder) from e
                yield FileInfo(name, st.st_size, st.st_mtime)

    def remove(self, h: Handle) -> None:
        path = self._path(h)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _error(e, f"removing {h} from", self.root) from e

    def leftovers(self, older_than: float, now: float | None = None) -> builtins.list[FileInfo]:
        """Temporary files that writers killed mid-save left (``.tmp-*`` in the repository's folders), last
        changed more than ``older_than`` seconds ago; ``name`` is the path relative to the root. A live
        writer's temporary file is younger than any sensible ``older_than`` (prune uses a day)."""
        import time

        now = time.time() if now is None else now
        out: builtins.list[FileInfo] = []
        folders = [self.root / t.folder for t in FileType if t not in (FileType.CONFIG, FileType.BOOTSTRAP)]
        data = self.root / FileType.DATA.folder
        folders += [data / d for d in self._entries(data) if len(d) == 2 and (data / d).is_dir()]
        folders.append(self.root)
        for folder in folders:
            for name in self._entries(folder):
                if not name.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = (folder / name).lstat()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise _error(e, "listing", folder) from e
                if not os.path.isdir(folder / name) and now - st.st_mtime > older_than:
                    out.append(FileInfo(str((folder / name).relative_to(self.root)), st.st_size, st.st_mtime))
        return out

    def remove_leftover(self, rel: str) -> None:
        """Remove one file :meth:`leftovers` named (and nothing else: the name must be a temporary one)."""
        path = self.root / rel
        if not path.name.startswith(TEMP_PREFIX) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"not a temporary file of this repository: {rel!r}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _error(e, f"removing {rel} from", self.root) from e

    def close(self) -> None:
        """Nothing to release."""

    def scratch(self, name: str) -> LocalBackend:
        """A backend on the folder ``<root>/<name>`` (see :class:`~.base.SupportsScratch`)."""
        check_scratch_name(name)
        return LocalBackend(self.root / name, connections=self._properties.connections)

    def drop_scratch(self, name: str) -> None:
        """Remove the empty folders under ``<root>/<name>`` and the folder itself; files stay."""
        check_scratch_name(name)
        top = self.root / name
        for folder, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(folder)
            except OSError:
                pass

    # -- helpers -------------------------------------------------------------------------------------

    def _entries(self, folder: Path) -> builtins.list[str]:
        try:
            return sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise _error(e, "listing", folder) from e

    def _mkdir(self, folder: Path) -> None:
        """Create one folder 0700 (fsyncing its parent); an existing folder is left as it is."""
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            return
        os.chmod(folder, DIR_MODE)
        fsync_dir(folder.parent)

    def _mkdirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents inside the root; never the root itself.

        A missing root usually means an unmounted disk: writing there would fill the wrong file system.
        """
        if not self.root.is_dir():
            raise BackendError(
                f"the repository folder {self.root} does not exist",
                hint="Is the disk mounted? A new repository is created with 'safehold init'.",
            )
        missing: builtins.list[Path] = []
        p = folder
        while p != self.root and not p.is_dir():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            self._mkdir(d)


class LocalSpool(FileSpool):
    """A temporary file in the repository; :meth:`commit` fsyncs it and renames it into place (also how
    :meth:`LocalBackend.save` writes a file). ``what`` and ``where`` name it in write errors."""

    def __init__(self, backend: LocalBackend, fd: int, tmp: Path, what: str, where: Path) -> None:
        super().__init__(fd)
        self._backend = backend
        self._tmp: Path | None = tmp
        self._what, self._where = what, where

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            super().write(data)
        except OSError as e:
            raise _error(e, f"writing {self._what} to", self._where) from e

    def commit(self, h: Handle) -> None:
        final = self._backend._path(h)
        folder = final.parent
        try:
            try:
                os.fsync(self._fd)
            finally:
                self._close()
            if self._tmp is None:
                raise ValueError("a spool is committed only once")
            try:
                os.replace(self._tmp, final)
            except FileNotFoundError:
                self._backend._mkdirs(folder)
                os.replace(self._tmp, final)
            self._tmp = None
            fsync_dir(folder)
        except OSError as e:
            self.discard()
            raise _error(e, f"writing {h} to", folder) from e
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self._close()
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _error(e: OSError, doing: str, where: Path) -> BackendError:
    """A BackendError with a message and hint that say what went wrong and what to do."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackendError(
            f"no space left while {doing} {where}",
            hint=f"Free space on {where} (or raise the quota), then run the command again.",
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return BackendError(
            f"permission denied while {doing} {where}",
            hint=f"Check that the user running safehold may read and write {where} (owner and mode).",
        )
    if e.errno == errno.EROFS:
        return BackendError(
            f"read-only file system while {doing} {where}",
            hint="Remount the file system read-write or choose another repository location.",
        )
    return BackendError(f"{e.strerror or e} while {doing} {where}")
