"""Fixtures of the health-check tests: real loopback servers (HTTP, TCP, TLS, supervisord), the real
databases and a private redis-server, certificates made for the test, and fake programs on PATH for what
the machine does not run (systemd as PID 1, users' crontabs)."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import cli  # noqa: F401 - fixture
from tests.helpers.pki import Pki
from tests.sources.conftest import RedisServer, mysql_dbs, pg_dbs, redis_server  # noqa: F401 - fixtures


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {"/health": (200, b"ok: app is up"), "/admin": (302, b"")}.get(
            self.path, (500, b"boom")
        )
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/health")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on a free loopback port: /health 200 'ok: app is up', /admin redirects there,
    anything else 500."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Callable[[Pki], int]]:
    """Start a TLS server (on a free loopback port, returned) that presents ``pki``'s certificate."""
    stops: list[Callable[[], None]] = []

    def start(pki: Pki) -> int:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert_file, pki.key_file)
        sock = socket.create_server(("127.0.0.1", 0))
        sock.settimeout(0.2)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()

        def close() -> None:
            stop.set()
            t.join(5)
            sock.close()

        stops.append(close)
        return int(sock.getsockname()[1])

    yield start
    for close in stops:
        close()


@dataclass
class Supervisor:
    conf: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Supervisor]:
    """A private supervisord (own config, socket and logs in tmp) with a program 'sleeper' that runs and
    a program 'crasher' that exits at once (FATAL)."""
    if shutil.which("supervisord") is None:
        pytest.skip("supervisord is not installed (scripts/system-deps.sh installs it)")
    d = tmp_path / "supervisor"
    d.mkdir()
    conf = d / "supervisord.conf"
    conf.write_text(
        f"""[unix_http_server]
file={d}/s.sock
[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{d}/s.sock
[program:sleeper]
command=sleep 600
numprocs=2
process_name=%(program_name)s_%(process_num)02d
startsecs=0
[program:crasher]
command=false
startsecs=1
startretries=0
"""
    )
    proc = subprocess.Popen(
        ["supervisord", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["supervisorctl", "-c", str(conf), "status"], capture_output=True, text=True, check=False
            ).stdout
            if out.count("RUNNING") == 2 and "FATAL" in out:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"supervisord did not settle: {out}")
        yield Supervisor(conf, proc)
    finally:
        subprocess.run(["supervisorctl", "-c", str(conf), "shutdown"], capture_output=True, check=False)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Put a shell script named ``name`` first on PATH (for systemctl on a machine without systemd as
    PID 1, and users' crontabs, which a test must not write)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def make(name: str, script: str) -> Path:
        p = bindir / name
        p.write_text("#!/bin/sh\n" + script)
        p.chmod(0o755)
        return p

    return make
