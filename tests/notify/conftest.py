"""Receivers the notification tests send to, on loopback: an HTTP server (apprise's json:// and form://
targets, healthchecks-style pings) and an SMTP server (aiosmtpd), both started and stopped by the tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers.fixtures import repo_path, run  # noqa: F401 - the CLI fixtures


@dataclass
class Request:
    method: str
    path: str
    body: str
    headers: dict[str, str]


@dataclass
class HttpReceiver:
    """Records every request; ``delay`` makes it answer late, ``status`` is what it answers."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def wait_for(self, count: int, timeout: float = 10) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            if receiver.delay:
                time.sleep(receiver.delay)
            receiver.requests.append(Request(self.command, self.path, body, dict(self.headers)))
            try:
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the slow-target tests: the client gave up waiting, as it should

        do_POST = do_GET = do_HEAD = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class SmtpServer:
    port: int
    user: str = "mailer"
    password: str = "smtp-Secret-9x"
    messages: list[str] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        return f"mailto://{self.user}:{self.password}@127.0.0.1:{self.port}?from=safehold@example.com&to={to}"

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = SmtpServer(port)

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            server.messages.append(envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    def authenticate(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = data.login == server.user.encode() and data.password == server.password.encode()
        return AuthResult(success=ok)

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    yield server
    controller.stop()
