"""Fixtures for the backend tests: a real sshd and a real S3-compatible server on loopback.

* ``sshd`` (session): ``/usr/sbin/sshd -D -e`` with its own config on a random 127.0.0.1 port, a throwaway
  host key and a throwaway user key for the current user. Skipped only when sshd is missing and ``CI`` is
  unset; in CI a missing sshd fails the tests (CI installs it with scripts/system-deps.sh).
* ``s3_server`` (session): moto's standalone server on a random 127.0.0.1 port; ``s3_options`` gives each
  test the options of an S3Backend on a bucket of its own (credentials come from the environment).
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SSHServer:
    host: str
    port: int
    user: str
    identity_file: Path
    known_hosts: Path
    host_key_line: str
    folder: Path

    def url(self, path: Path | str) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{path}"

    def options(self) -> dict[str, Any]:
        return {"identity_file": str(self.identity_file), "known_hosts": str(self.known_hosts)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "safehold-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port}: {log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{SSHD} or ssh-keygen is missing in CI (scripts/system-deps.sh installs them)")
        pytest.skip(f"{SSHD} is not installed")
    folder = tmp_path_factory.mktemp("sshd")
    host_key, user_key = folder / "host_key", folder / "user_key"
    _keygen(host_key)
    _keygen(user_key)
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "user_key.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {folder / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "MaxSessions 30",
                "MaxStartups 30:30:60",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
    log = folder / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=out)
    try:
        _wait_for_port(port, proc, log)
        host_pub = (folder / "host_key.pub").read_text().split()
        line = f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}"
        known = folder / "known_hosts"
        known.write_text(line + "\n")
        yield SSHServer("127.0.0.1", port, getpass.getuser(), user_key, known, line, folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in the environment (the standard chain reads them), no real AWS config."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/safehold-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/safehold-test-aws-credentials")


@pytest.fixture
def s3_options(s3_server: str, aws_env: None) -> dict[str, Any]:
    """Options for an S3Backend against the test server; the bucket is created by create()."""
    return {"endpoint_url": s3_server, "region": "us-east-1", "path_style": True}


def random_bucket() -> str:
    return f"safehold-test-{secrets.token_hex(6)}"
