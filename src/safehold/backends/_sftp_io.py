"""SFTP plumbing for :mod:`safehold.backends.sftp`: host-key policy, error classification, file I/O."""

from __future__ import annotations

import errno
import os
import posixpath
from pathlib import Path
from typing import Any

import paramiko

from safehold.backends.base import FileType, Handle
from safehold.backends.space import Space
from safehold.errors import BackendError

CHUNK = 1 << 20
PREFETCH_FROM = 1 << 20
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}


def network_error(e: BaseException) -> bool:
    """True for failures of the connection itself (worth a reconnect and a retry)."""
    if isinstance(e, EOFError | paramiko.SSHException | TimeoutError | ConnectionError):
        return True
    return isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS


def connection_lost(e: BaseException, sftp: paramiko.SFTPClient) -> bool:
    """True when ``e`` came from a lost connection (paramiko raises a bare OSError on a closed socket)."""
    if network_error(e):
        return True
    channel = sftp.get_channel()
    if channel is None or channel.closed:
        return True
    transport = channel.get_transport()
    return not transport.is_active()


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or append them to ``known_hosts`` when ``accept_new`` is set."""

    def __init__(self, known_hosts: Path, accept_new: bool, port: int) -> None:
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.port = port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        fingerprint = key.fingerprint
        if not self.accept_new:
            port = f"-p {self.port} " if self.port != 22 else ""
            scan = f"ssh-keyscan {port}{_bare(hostname)}"
            raise BackendError(
                f"the SSH host key of {hostname} ({fingerprint}) is not in {self.known_hosts}",
                hint=(
                    f"Check the fingerprint with the server's administrator, then add it "
                    f"('{scan} >> {self.known_hosts}') or set accept_new_host_key."
                ),
            )
        entry = hostname  # paramiko passes "[host]:port" for a port other than 22, as known_hosts wants
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{entry} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def _bare(hostname: str) -> str:
    """``[host]:port`` -> ``host``."""
    return hostname[1:].split("]", 1)[0] if hostname.startswith("[") else hostname


def plain_rename(sftp: paramiko.SFTPClient, tmp: str, final: str, h: Handle, size: int) -> None:
    """Rename for servers without posix-rename@openssh.com, where a plain rename refuses an existing target.

    Other files are immutable and named by their content, so an existing target of the right size already
    holds these bytes. A lock file is removed and renamed again: not atomic, but locks are only ever read
    by safehold itself, which retries a lock it cannot parse.
    """
    try:
        sftp.rename(tmp, final)
        return
    except FileNotFoundError:
        raise
    except OSError:
        if h.type is FileType.LOCK:
            sftp.remove(final)
            sftp.rename(tmp, final)
            return
        if (sftp.stat(final).st_size or 0) != size:
            raise
        sftp.remove(tmp)


def read_exactly(f: paramiko.SFTPFile, n: int) -> bytes:
    """Read up to ``n`` bytes in pieces: paramiko's read() of a large size concatenates 32 KiB replies one
    by one (quadratic time: 15 s for 20 MiB)."""
    if n <= CHUNK:
        return f.read(n)
    buf = bytearray()
    while len(buf) < n:
        piece = f.read(min(CHUNK, n - len(buf)))
        if not piece:
            break
        buf += piece
    return bytes(buf)


def fsync(sftp: paramiko.SFTPClient, f: paramiko.SFTPFile) -> None:
    """Ask the server to fsync ``f`` (OpenSSH's fsync@openssh.com); servers without it are skipped."""
    request: Any = getattr(sftp, "_request", None)
    handle = getattr(f, "handle", None)
    if request is None or handle is None:
        return
    try:
        request(paramiko.sftp.CMD_EXTENDED, "fsync@openssh.com", handle)
    except OSError as e:
        if connection_lost(e, sftp):
            raise
        # SSH_FX_OP_UNSUPPORTED: the server cannot fsync; the rename still makes the write atomic.


def statvfs(sftp: paramiko.SFTPClient, path: str, *, where: str) -> Space | str:
    """``statvfs@openssh.com`` of ``path`` (the folder, or its nearest existing parent); the reason
    when the server does not answer it (not OpenSSH, or the extension switched off)."""
    request: Any = getattr(sftp, "_request", None)
    if request is None:
        return f"the SFTP connection to {where} cannot ask for free space"
    probe = path
    while True:
        try:
            kind, msg = request(paramiko.sftp.CMD_EXTENDED, "statvfs@openssh.com", probe)
            break
        except FileNotFoundError:
            parent = posixpath.dirname(probe.rstrip("/"))
            if not parent or parent == probe:
                raise
            probe = parent
        except OSError as e:
            if connection_lost(e, sftp):
                raise
            return f"the SFTP server of {where} does not report free space (statvfs@openssh.com: {e})"
    if kind != paramiko.sftp.CMD_EXTENDED_REPLY:
        return f"the SFTP server of {where} gave no statvfs answer"
    bsize, frsize, blocks, bfree, bavail, files, _ffree, favail = (msg.get_int64() for _ in range(8))
    size = frsize or bsize
    return Space(path, blocks * size, bavail * size, files, favail, None, (blocks - bfree) * size)
