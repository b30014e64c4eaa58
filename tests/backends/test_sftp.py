"""The SFTP backend against a real sshd: conformance, host keys, authentication, failures."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safehold.backends.base import Backend, FileType, Handle, TransientBackendError
from safehold.backends.registry import open_backend
from safehold.backends.sftp import SFTPBackend, from_url
from safehold.backends.wrappers import RetryPolicy, unwrap
from safehold.errors import BackendError, ConfigError
from tests.backends.conformance import BackendConformance, data_handle
from tests.backends.conftest import SSHServer

pytestmark = pytest.mark.sftp


def make(sshd: SSHServer, path: Path, **kw: object) -> SFTPBackend:
    opts: dict[str, object] = {**sshd.options(), **kw}
    return from_url(sshd.url(path), opts)


class TestSFTPConformance(BackendConformance):
    @pytest.fixture
    def make_backend(self, sshd: SSHServer, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
        made: list[SFTPBackend] = []
        counter = iter(range(1000))

        def factory() -> Backend:
            b = make(sshd, tmp_path / f"repo{next(counter)}", connections=4)
            made.append(b)
            return b

        yield factory
        for b in made:
            b.close()


@pytest.fixture
def sftp(sshd: SSHServer, tmp_path: Path) -> Iterator[SFTPBackend]:
    b = make(sshd, tmp_path / "repo")
    b.create()
    yield b
    b.close()


def test_layout_modes_and_no_temp_files(sftp: SFTPBackend, tmp_path: Path) -> None:
    data = os.urandom(3000)
    h = data_handle(data)
    sftp.save(h, data)
    path = tmp_path / "repo" / "data" / h.name[:2] / h.name
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == [h.name]
    (path.parent / f".tmp-{h.name}-0000").write_bytes(b"half")
    assert [f.name for f in sftp.list(FileType.DATA)] == [h.name]
    assert sftp.properties.location == f"sftp://{sftp.user}@127.0.0.1:{sftp.port}{tmp_path}/repo"


def test_registry_opens_sftp(sshd: SSHServer, tmp_path: Path) -> None:
    b = open_backend(sshd.url(tmp_path / "r"), **sshd.options(), connections=2)
    try:
        assert isinstance(unwrap(b), SFTPBackend)
        assert b.properties.connections == 2
        b.create()
        b.save(Handle(FileType.CONFIG), b"cfg")
        assert (tmp_path / "r" / "config").read_bytes() == b"cfg"
    finally:
        b.close()


def test_unknown_host_key_refused_then_accepted(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "kh" / "known_hosts"
    b = make(sshd, tmp_path / "r", known_hosts=str(known))
    with pytest.raises(BackendError) as e:
        b.exists()
    assert not isinstance(e.value, TransientBackendError)
    assert "is not in" in e.value.message
    assert "SHA256:" in e.value.message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in e.value.hint
    assert not known.exists()
    b.close()

    b = make(sshd, tmp_path / "r", known_hosts=str(known), accept_new_host_key=True)
    assert not b.exists()
    b.close()
    assert known.read_text().strip() == sshd.host_key_line
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    # now known: works without accept_new_host_key
    b = make(sshd, tmp_path / "r", known_hosts=str(known))
    assert not b.exists()
    b.close()


def test_changed_host_key_is_refused_even_with_accept_new(sshd: SSHServer, tmp_path: Path) -> None:
    import paramiko

    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.identity_file))  # any other ed25519 key
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {other.get_base64()}\n")
    b = make(sshd, tmp_path / "r", known_hosts=str(known), accept_new_host_key=True)
    with pytest.raises(BackendError, match="CHANGED") as e:
        b.exists()
    assert "known_hosts" in e.value.hint
    b.close()
    assert known.read_text().count("\n") == 1


def test_wrong_key_is_authentication_error(sshd: SSHServer, tmp_path: Path) -> None:
    import subprocess

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    b = make(sshd, tmp_path / "r", identity_file=str(stranger))
    with pytest.raises(BackendError, match="authentication failed") as e:
        b.exists()
    assert not isinstance(e.value, TransientBackendError)
    b.close()


def test_unreachable_server_is_transient(sshd: SSHServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = from_url(f"sftp://{sshd.user}@127.0.0.1:{port}{tmp_path}", sshd.options())
    with pytest.raises(TransientBackendError, match="cannot connect"):
        b.exists()
    b.close()


def test_dropped_connection_reconnects_through_retry(sshd: SSHServer, tmp_path: Path) -> None:
    b = open_backend(sshd.url(tmp_path / "r"), **sshd.options(), retry=RetryPolicy(initial_delay=0.01))
    try:
        b.create()
        b.save(Handle(FileType.INDEX, "aa"), b"index")
        inner = unwrap(b)
        assert isinstance(inner, SFTPBackend)
        assert inner._pool.client is not None
        transport = inner._pool.client.get_transport()
        assert transport is not None
        transport.close()  # the connection dies under the idle channels
        assert b.load(Handle(FileType.INDEX, "aa")) == b"index"
    finally:
        b.close()


def test_missing_root_is_not_created_by_save(sshd: SSHServer, tmp_path: Path) -> None:
    b = make(sshd, tmp_path / "absent" / "repo")
    with pytest.raises(BackendError, match="does not exist"):
        b.save(data_handle(b"x"), b"x")
    b.close()
    assert not (tmp_path / "absent").exists()


def test_uncreatable_folder_is_a_permanent_error(sshd: SSHServer, tmp_path: Path) -> None:
    b = make(sshd, Path("/proc/safehold-test"))
    with pytest.raises(BackendError) as e:
        b.create()
    assert not isinstance(e.value, TransientBackendError)
    b.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sftp://u:pw@h/x", "must not contain a password"),
        ("sftp:///x", "no host"),
        ("sftp://u@h", "no repository path"),
        ("sftp://u@h:99999/x", "bad port"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_url(url, {})


def test_url_forms() -> None:
    b = from_url("sftp://bob@example.org:2222/~/backups/repo", {})
    assert (b.user, b.host, b.port, b.root) == ("bob", "example.org", 2222, "backups/repo")
    assert b.properties.location == "sftp://bob@example.org:2222/~/backups/repo"
    b = from_url("sftp://bob@example.org/srv/repo/", {"connections": 6})
    assert (b.port, b.root, b.properties.connections) == (22, "/srv/repo", 6)
    with pytest.raises(ConfigError, match="unknown option"):
        from_url("sftp://bob@example.org/srv/repo", {"password": "x"})


def test_server_without_posix_rename(sftp: SFTPBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    import paramiko

    def unsupported(self: paramiko.SFTPClient, old: str, new: str) -> None:
        raise OSError("Operation unsupported")

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", unsupported)
    data = os.urandom(100)
    h = data_handle(data)
    sftp.save(h, data)
    sftp.save(h, data)  # the target exists: same bytes, fine
    lock = Handle(FileType.LOCK, "ab")
    sftp.save(lock, b"one")
    sftp.save(lock, b"two")
    assert sftp.load(h) == data
    assert sftp.load(lock) == b"two"
    assert [f.name for f in sftp.list(FileType.DATA)] == [h.name]
    assert os.listdir(Path(sftp.root) / "data" / h.name[:2]) == [h.name]
    assert os.listdir(Path(sftp.root) / "locks") == ["ab"]
