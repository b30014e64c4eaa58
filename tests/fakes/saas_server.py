"""A real HTTP server on 127.0.0.1 (random port, own thread) that plays Retell AI or Cal.com for tests.

The service logic lives in :mod:`tests.fakes.saas_retell` and :mod:`tests.fakes.saas_calcom`; this module
holds what both share: the HTTP plumbing (``ThreadingHTTPServer``), the route table, bearer-key checking,
a log of every request, fault injection and a fake clock.

Usage::

    with FakeSaasServer(FakeRetell(api_key="k")) as server:
        server.url                      # http://127.0.0.1:<port>   (Cal.com: .../v2 is part of the routes)
        server.app.agents[...]          # stateful: tests create, patch and delete objects directly
        server.app.faults.fail_429 = 2  # the next two authenticated requests answer 429
        server.app.faults.always_500 = True

Fault injection (checked after authentication, before routing, in this order): ``always_500``,
``fail_500`` (count), ``fail_429`` (count; each service adds its own headers: Retell a ``Retry-After``,
Cal.com its ``X-RateLimit-*`` headers and no ``Retry-After``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.clock import FakeClock

__all__ = ["FakeClock", "FakeSaasServer", "RealClock"]


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What the fake saw: method, decoded path, query (last value per name), headers, JSON body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_path: str = ""


@dataclass
class Faults:
    fail_429: int = 0
    fail_500: int = 0
    always_500: bool = False
    retry_after: str | None = "2"


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


Handler = Callable[..., Reply]


class FakeApi:
    """Base of a fake service: auth, faults, routing. Subclasses add routes and error bodies."""

    def __init__(self, api_key: str, clock: Any = None) -> None:
        self.api_key = api_key
        self.clock = clock or RealClock()
        self.faults = Faults()
        self.log: list[Request] = []
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    # to override
    def error_body(self, req: Request, status: int, message: str, code: str) -> Any:
        raise NotImplementedError

    def fault_429(self, req: Request) -> Reply:
        raise NotImplementedError

    def before(self, req: Request) -> Reply | None:
        """A hook after auth and faults (Cal.com's rate limiter)."""
        return None

    def decorate(self, reply: Reply) -> Reply:
        return reply

    def paths(self, method: str) -> list[str]:
        """Recorded paths of one method (for assertions)."""
        return [r.path for r in self.log if r.method == method]

    def handle(self, req: Request) -> Reply:
        with self.lock:
            self.log.append(req)
            if req.headers.get("authorization") != f"Bearer {self.api_key}":
                return self.decorate(Reply(401, self.error_body(req, 401, self.unauthorized, "Unauthorized")))
            if self.faults.always_500 or self.faults.fail_500 > 0:
                self.faults.fail_500 = max(self.faults.fail_500 - 1, 0)
                return self.decorate(
                    Reply(500, self.error_body(req, 500, "Internal server error", "InternalServerError"))
                )
            if self.faults.fail_429 > 0:
                self.faults.fail_429 -= 1
                return self.decorate(self.fault_429(req))
            early = self.before(req)
            if early is not None:
                return self.decorate(early)
            for method, pattern, handler in self._routes:
                m = pattern.match(req.path)
                if m and method == req.method:
                    try:
                        return self.decorate(handler(req, *m.groups()))
                    except ApiError as exc:
                        body = self.error_body(req, exc.status, exc.message, exc.code)
                        return self.decorate(Reply(exc.status, body))
            body = self.error_body(req, 404, f"Cannot {req.method} {req.path}", "NotFoundException")
            return self.decorate(Reply(404, body))

    unauthorized = "Invalid API key"


class FakeSaasServer:
    """Serve a :class:`FakeApi` on 127.0.0.1:<random port> from a background thread."""

    def __init__(self, app: FakeApi) -> None:
        self.app = app
        app_ref = app

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = "<invalid json>"
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, unquote(parts.path), query, headers, body, parts.path)
                reply = app_ref.handle(req)
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeSaasServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
