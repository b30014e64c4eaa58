"""The SSH connection of :mod:`safehold.backends.sftp` and its pool of SFTP channels.

One SSH connection carries up to ``size`` SFTP channels; a thread takes an idle channel (or opens one) for
one call and gives it back, so the backend is safe to use from many threads. Host keys are checked
against ``known_hosts`` (:class:`~safehold.backends._sftp_io.HostKeyPolicy`). A network failure drops the
connection (every channel of it) and raises TransientBackendError; the next call connects again.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import paramiko

from safehold.backends._sftp_io import HostKeyPolicy, connection_lost
from safehold.backends.base import TransientBackendError
from safehold.errors import BackendError

T = TypeVar("T")


class ChannelPool:
    """SFTP channels over one SSH connection to ``user@host:port``, opened on first use.

    ``location`` names the repository in messages. ``known_hosts``: the one file to check and append
    new keys to; None means ``/etc/ssh/ssh_known_hosts`` and ``~/.ssh/known_hosts`` (appended to).
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        *,
        identity_file: str | None,
        known_hosts: Path | None,
        accept_new_host_key: bool,
        timeout: float,
        size: int,
        location: str,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.accept_new_host_key = accept_new_host_key
        self.timeout = timeout
        self.size = size
        self.location = location
        self._mutex = threading.Condition()
        #: The SSH connection, None until the first call and after a failure.
        self.client: paramiko.SSHClient | None = None
        self._idle: list[paramiko.SFTPClient] = []
        self._open = 0
        self._generation = 0
        self._closed = False

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.known_hosts is not None:
            files = [self.known_hosts]
            append_to = self.known_hosts
        else:
            append_to = Path("~/.ssh/known_hosts").expanduser()
            files = [Path("/etc/ssh/ssh_known_hosts"), append_to]
        for f in files:
            if f.is_file():
                client.get_host_keys().load(str(f))
        client.set_missing_host_key_policy(HostKeyPolicy(append_to, self.accept_new_host_key, self.port))
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=self.identity_file,
                allow_agent=True,
                look_for_keys=self.identity_file is None,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise BackendError(
                f"the SSH host key of {self.host} has CHANGED (got {e.key.fingerprint}); refusing to connect",
                hint=(
                    "Someone may be intercepting the connection, or the server was reinstalled. Verify "
                    "the new key with the server's administrator and replace the old line in known_hosts."
                ),
            ) from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise BackendError(
                f"SSH authentication failed for {self.user}@{self.host}: {e}",
                hint="Check identity_file (or the keys in your SSH agent) and the server's authorized_keys.",
            ) from None
        except BackendError:
            client.close()
            raise
        except socket.gaierror as e:
            client.close()
            raise BackendError(
                f"cannot resolve the host name {self.host}: {e}", hint="Check the host name in the URL."
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            client.close()
            raise TransientBackendError(
                f"cannot connect to {self.host}:{self.port}: {e}",
                hint="Check that the server is reachable and sshd is running.",
            ) from e
        return client

    def _acquire(self) -> tuple[paramiko.SFTPClient, int]:
        with self._mutex:
            while True:
                if self._closed:
                    raise BackendError(f"{self.location} is closed")
                if self._idle:
                    return self._idle.pop(), self._generation
                if self._open < self.size:
                    self._open += 1
                    break
                self._mutex.wait()
            generation = self._generation
            try:
                if self.client is None:
                    self.client = self._connect()
                client = self.client
            except BaseException:
                self._open -= 1
                self._mutex.notify()
                raise
        try:
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.timeout)
        except BaseException:
            with self._mutex:
                self._open -= 1
                self._mutex.notify()
            raise
        return sftp, generation

    def _release(self, sftp: paramiko.SFTPClient, generation: int, broken: bool) -> None:
        with self._mutex:
            if broken or generation != self._generation or self._closed:
                self._open -= 1
                try:
                    sftp.close()
                except Exception:
                    pass
                if broken and generation == self._generation:
                    self._drop_connection()
            else:
                self._idle.append(sftp)
            self._mutex.notify()

    def _drop_connection(self) -> None:
        """Forget the SSH connection (called with the mutex held); channels of it close on release."""
        self._generation += 1
        for s in self._idle:
            try:
                s.close()
            except Exception:
                pass
        self._open -= len(self._idle)
        self._idle.clear()
        if self.client is not None:
            self.client.close()
            self.client = None

    def run(self, doing: str, fn: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``fn`` on a pooled channel, mapping network failures to TransientBackendError."""
        try:
            sftp, generation = self._acquire()
        except BackendError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            with self._mutex:
                self._drop_connection()
            raise TransientBackendError(f"opening a channel for {doing} on {self.location}: {e}") from e
        broken = False
        try:
            return fn(sftp)
        except BackendError:
            raise
        except Exception as e:
            if not connection_lost(e, sftp):
                raise
            broken = True
            raise TransientBackendError(f"connection failed while {doing} on {self.location}: {e}") from e
        finally:
            self._release(sftp, generation, broken)

    def close(self) -> None:
        """Close the connection; a call after this raises BackendError."""
        with self._mutex:
            self._closed = True
            self._drop_connection()
            self._mutex.notify_all()
