"""A repository on an SSH server, over SFTP (paramiko).

URL: ``sftp://[user@]host[:port]/absolute/path`` (``/~/path`` is relative to the login folder). The layout
is the local backend's. Authentication: the ``identity_file`` option, else the SSH agent and the default
keys in ``~/.ssh``. Passwords are not supported (they would have to live in the configuration).

Host keys are checked against ``known_hosts`` (default ``~/.ssh/known_hosts`` and
``/etc/ssh/ssh_known_hosts``). An unknown key is refused unless ``accept_new_host_key`` is set, which
appends it to the known_hosts file (the given one, or ``~/.ssh/known_hosts``); a *changed* key is always
refused.

A save writes ``<name>.tmp-...`` in the target folder, fsyncs it where the server offers
``fsync@openssh.com``, renames it into place with ``posix-rename@openssh.com`` (atomic replace) and checks
the size of the result. One SSH connection carries up to ``connections`` SFTP channels (a pool,
:mod:`._sftp_pool`), so the backend is safe to use from many threads. Network failures raise
TransientBackendError and drop the connection; the next call (usually the retry wrapper's) connects again.
Host-key policy, error classification and file I/O of a channel: :mod:`._sftp_io`.
"""

from __future__ import annotations

import builtins
import errno
import getpass
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko

from safehold.backends._sftp_io import (
    CHUNK,
    PREFETCH_FROM,
    connection_lost,
    fsync,
    plain_rename,
    read_exactly,
    statvfs,
)
from safehold.backends._sftp_pool import ChannelPool
from safehold.backends._util import (
    TEMP_PREFIX,
    check_handle,
    check_options,
    check_scratch_name,
    is_valid_name,
    resolve_range,
    temp_name,
)
from safehold.backends.base import BackendProperties, FileInfo, FileType, Handle, TransientBackendError
from safehold.backends.space import Space
from safehold.errors import BackendError, ConfigError, NotFoundError

#: A host name (DNS labels) or an IP address; urlsplit gives IPv6 without its brackets.
_HOST = re.compile(r"[a-z0-9_][a-z0-9_.-]*|[0-9a-f.]*:[0-9a-f:.]*(%[a-z0-9_.-]+)?", re.IGNORECASE)


class SFTPBackend:
    """Repository files under ``path`` on ``host``; connects on first use."""

    def __init__(
        self,
        host: str,
        path: str,
        *,
        user: str | None = None,
        port: int = 22,
        identity_file: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        accept_new_host_key: bool = False,
        connections: int = 4,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user or getpass.getuser()
        self.root = path.rstrip("/") or "/"
        self.identity_file = str(Path(identity_file).expanduser()) if identity_file else None
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else None
        self.accept_new_host_key = accept_new_host_key
        self.timeout = timeout
        where = host if port == 22 else f"{host}:{port}"
        self._properties = BackendProperties(
            location=f"sftp://{self.user}@{where}{'' if self.root.startswith('/') else '/~/'}{self.root}",
            connections=max(1, connections),
            local=False,
        )
        self._pool = ChannelPool(
            host,
            port,
            self.user,
            identity_file=self.identity_file,
            known_hosts=self.known_hosts,
            accept_new_host_key=accept_new_host_key,
            timeout=timeout,
            size=self._properties.connections,
            location=self._properties.location,
        )

    @property
    def properties(self) -> BackendProperties:
        return self._properties

    # -- paths ----------------------------------------------------------------------------------------

    def _path(self, h: Handle) -> str:
        check_handle(h)
        return posixpath.join(self.root, h.path())

    def _error(self, e: OSError, doing: str) -> BackendError:
        if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM):
            return BackendError(
                f"permission denied while {doing} on {self._properties.location}",
                hint=f"Check that {self.user} may read and write {self.root} on {self.host}.",
            )
        return BackendError(
            f"{doing} on {self._properties.location} failed: {e}",
            hint=f"Check free space and permissions of {self.root} on {self.host}.",
        )

    def _mkdirs(self, sftp: paramiko.SFTPClient, folder: str, *, stop: str | None) -> None:
        """Create ``folder`` and missing parents (not above ``stop``), mode 0700."""
        missing: builtins.list[str] = []
        p = folder
        while p not in ("", "/") and p != stop:
            try:
                if stat.S_ISDIR(sftp.stat(p).st_mode or 0):
                    break
                raise BackendError(f"{p} on {self.host} exists and is not a folder")
            except FileNotFoundError:
                missing.append(p)
                p = posixpath.dirname(p)
        if stop is not None and p == stop and p != folder:
            try:
                sftp.stat(stop)
            except FileNotFoundError:
                raise BackendError(
                    f"the repository folder {stop} does not exist on {self.host}",
                    hint="A new repository is created with 'safehold init'.",
                ) from None
        for d in reversed(missing):
            try:
                sftp.mkdir(d, 0o700)
            except OSError:
                if not stat.S_ISDIR(sftp.stat(d).st_mode or 0):  # lost a race with another writer: fine
                    raise

    # -- protocol -------------------------------------------------------------------------------------

    def create(self) -> None:
        def run(sftp: paramiko.SFTPClient) -> None:
            try:
                self._mkdirs(sftp, self.root, stop=None)
                for t in FileType:
                    if t not in (FileType.CONFIG, FileType.BOOTSTRAP):
                        self._mkdirs(sftp, posixpath.join(self.root, t.folder), stop=self.root)
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, "creating the repository folders") from e

        self._pool.run("creating the repository", run)

    def space(self) -> Space | str:
        """The free space and inodes of the repository's file system on the server, through OpenSSH's
        ``statvfs@openssh.com`` extension; a server without it gives the reason instead."""

        def run(sftp: paramiko.SFTPClient) -> Space | str:
            return statvfs(sftp, self.root, where=f"{self.host}:{self.root}")

        return self._pool.run(f"reading the free space of {self.root}", run)

    def exists(self) -> bool:
        def run(sftp: paramiko.SFTPClient) -> bool:
            try:
                sftp.stat(posixpath.join(self.root, "config"))
                return True
            except FileNotFoundError:
                return False
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, "looking for config") from e

        return self._pool.run("looking for config", run)

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        final = self._path(h)
        folder = posixpath.dirname(final)
        tmp = posixpath.join(folder, temp_name(final))
        view = memoryview(data).cast("B")

        def upload(sftp: paramiko.SFTPClient) -> None:
            try:
                f = sftp.open(tmp, "wb")
            except FileNotFoundError:
                self._mkdirs(sftp, folder, stop=self.root)
                f = sftp.open(tmp, "wb")
            with f:
                f.set_pipelined(True)
                f.chmod(0o600)
                for i in range(0, len(view), CHUNK):
                    f.write(view[i : i + CHUNK])
                f.flush()
                fsync(sftp, f)
            try:
                sftp.posix_rename(tmp, final)
            except OSError as e:
                if connection_lost(e, sftp) or e.errno is not None:
                    raise
                plain_rename(sftp, tmp, final, h, len(view))  # no posix-rename@openssh.com
            size = sftp.stat(final).st_size
            if size != len(view):
                raise TransientBackendError(
                    f"{h} on {self._properties.location} has {size} bytes after upload, not {len(view)}"
                )

        def run(sftp: paramiko.SFTPClient) -> None:
            try:
                upload(sftp)
            except BaseException as e:
                lost = connection_lost(e, sftp)
                if not lost:
                    try:
                        sftp.remove(tmp)
                    except Exception:
                        pass
                if isinstance(e, OSError) and not lost:
                    raise self._error(e, f"writing {h}") from e
                raise

        self._pool.run(f"writing {h}", run)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(h)

        def run(sftp: paramiko.SFTPClient) -> bytes:
            try:
                with sftp.open(path, "rb") as f:
                    size = f.stat().st_size or 0
                    start, end = resolve_range(h, size, offset, length)
                    if end == start:
                        return b""
                    f.seek(start)
                    if end - start >= PREFETCH_FROM:
                        f.prefetch(end)
                    got = read_exactly(f, end - start)
            except FileNotFoundError:
                raise NotFoundError(f"{h} does not exist in {self._properties.location}") from None
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, f"reading {h}") from e
            if len(got) != end - start:
                raise BackendError(
                    f"short read of {h} on {self._properties.location}: "
                    f"got {len(got)} of {end - start} bytes",
                    hint="The file changed or shrank while it was read; run 'safehold check'.",
                )
            return got

        return self._pool.run(f"reading {h}", run)

    def stat(self, h: Handle) -> FileInfo:
        path = self._path(h)

        def run(sftp: paramiko.SFTPClient) -> FileInfo:
            try:
                st = sftp.stat(path)
            except FileNotFoundError:
                raise NotFoundError(f"{h} does not exist in {self._properties.location}") from None
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, f"reading the size of {h}") from e
            return FileInfo(h.name if h.type is not FileType.CONFIG else "config", st.st_size or 0)

        return self._pool.run(f"reading the size of {h}", run)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        if t is FileType.CONFIG:
            try:
                yield self.stat(Handle(FileType.CONFIG))
            except NotFoundError:
                pass
            return

        def entries(sftp: paramiko.SFTPClient, folder: str) -> builtins.list[paramiko.SFTPAttributes]:
            try:
                return sftp.listdir_attr(folder)
            except FileNotFoundError:
                return []
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, f"listing {folder}") from e

        def run(sftp: paramiko.SFTPClient) -> builtins.list[FileInfo]:
            top = posixpath.join(self.root, t.folder)
            folders = [top]
            if t is FileType.DATA:
                folders = [
                    posixpath.join(top, a.filename)
                    for a in entries(sftp, top)
                    if len(a.filename) == 2 and stat.S_ISDIR(a.st_mode or 0)
                ]
            found = []
            for folder in folders:
                for a in entries(sftp, folder):
                    name = a.filename
                    if name.startswith(TEMP_PREFIX) or not is_valid_name(name, t):
                        continue
                    if stat.S_ISREG(a.st_mode or 0):
                        found.append(FileInfo(name, a.st_size or 0, a.st_mtime))
            return found

        yield from self._pool.run(f"listing {t.folder}", run)

    def remove(self, h: Handle) -> None:
        path = self._path(h)

        def run(sftp: paramiko.SFTPClient) -> None:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                return
            except OSError as e:
                if connection_lost(e, sftp):
                    raise
                raise self._error(e, f"removing {h}") from e

        self._pool.run(f"removing {h}", run)

    def close(self) -> None:
        self._pool.close()

    def scratch(self, name: str) -> SFTPBackend:
        """A backend (with its own connection) on the folder ``<root>/<name>``."""
        check_scratch_name(name)
        return SFTPBackend(
            self.host,
            posixpath.join(self.root, name),
            user=self.user,
            port=self.port,
            identity_file=self.identity_file,
            known_hosts=self.known_hosts,
            accept_new_host_key=self.accept_new_host_key,
            connections=self._properties.connections,
            timeout=self.timeout,
        )

    def drop_scratch(self, name: str) -> None:
        """Remove the empty folders under ``<root>/<name>`` and the folder itself; files stay."""
        check_scratch_name(name)

        def rmdirs(sftp: paramiko.SFTPClient, folder: str) -> None:
            try:
                entries = sftp.listdir_attr(folder)
            except FileNotFoundError:
                return
            for a in entries:
                if stat.S_ISDIR(a.st_mode or 0):
                    rmdirs(sftp, posixpath.join(folder, a.filename))
            try:
                sftp.rmdir(folder)
            except OSError as e:
                if connection_lost(e, sftp):
                    raise

        self._pool.run(
            "removing the scratch folder", lambda sftp: rmdirs(sftp, posixpath.join(self.root, name))
        )


def from_url(url: str, options: dict[str, Any]) -> SFTPBackend:
    """Make an :class:`SFTPBackend` from ``sftp://[user@]host[:port]/path`` and the options
    ``identity_file``, ``known_hosts``, ``accept_new_host_key``, ``connections``, ``timeout``.
    """
    allowed = {"identity_file", "known_hosts", "accept_new_host_key", "connections", "timeout"}
    check_options(options, allowed, "sftp")
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigError(
            "sftp URLs must not contain a password",
            hint="Use an SSH key (identity_file) or an SSH agent instead.",
        )
    if not parts.hostname:
        raise ConfigError(f"no host in {url!r}", hint="Use sftp://user@host[:port]/path.")
    if not _HOST.fullmatch(parts.hostname):
        # the host name is written into known_hosts (one line per host) and shown in an ssh-keyscan hint
        raise ConfigError(
            f"bad host name in {url!r}",
            hint="A host is a DNS name or an IP address (IPv6 in brackets): sftp://user@host[:port]/path.",
        )
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"bad port in {url!r}", hint="Use sftp://user@host[:port]/path.") from None
    path = unquote(parts.path)
    if path.startswith("/~/"):
        path = path[3:]
    elif path in ("", "/", "/~"):
        raise ConfigError(f"no repository path in {url!r}", hint="Use sftp://user@host[:port]/path.")
    return SFTPBackend(
        parts.hostname,
        path,
        user=unquote(parts.username) if parts.username else None,
        port=port,
        **options,
    )
