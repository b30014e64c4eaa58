"""The HTTP client shared by the SaaS sources: bearer auth, retries, rate limits, clear errors.

Contract of :meth:`ApiClient.request`:

* sends ``Authorization: Bearer <key>``; the key never appears in an error, log line or metadata (an
  error body that echoes it is scrubbed);
* retries connection errors, 408, 409, 429 and >= 500 up to ``max_retries`` times. The wait is the
  server's ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date) when it is between 0 and 60 s;
  else, on a 429, Cal.com's ``X-RateLimit-Reset-Default`` (seconds, capped at 60 s); else exponential
  backoff 0.5 s x 2^n capped at 8 s with up to 25 % jitter (what Retell's official SDK does);
* an optional client-side :class:`SlidingWindowLimiter` (Cal.com: 120 requests / 60 s) is acquired before
  every attempt, and ``X-RateLimit-Remaining-Default: 0`` pauses it until the announced reset;
* returns the decoded JSON body; with ``allow_404`` a 404 returns ``None``;
* raises :class:`~safehold.errors.SourceError` otherwise: 401/403 with the hint "check the API key
  reference", other statuses with the status, the API's own error message and the attempt count.

Time is injected (:class:`Clock`), so tests of backoff and rate limits run without sleeping.
"""

from __future__ import annotations

import email.utils
import functools
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from safehold import syntax
from safehold.errors import SourceError

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_SERVER_WAIT = 60.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
KEY_HINT = (
    "Check the API key reference (env, file or command) in the component's settings, and that the key "
    "is valid for this account."
)


class Clock(Protocol):
    """Time as the client sees it: a monotonic reading and a way to wait."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SlidingWindowLimiter:
    """At most ``limit`` acquisitions per ``window`` seconds (a sliding window); thread-safe."""

    def __init__(self, limit: int, window: float, clock: Clock) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Wait (through the clock) until one more request is allowed, then count it."""
        while True:
            with self._lock:
                now = self._clock.monotonic()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                wait = self._blocked_until - now
                if wait <= 0 and len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                if wait <= 0:
                    wait = self._stamps[0] + self.window - now
            wait = max(wait, 0.001)
            self.waited += wait
            self._clock.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Allow nothing for ``seconds`` from now (the server said the budget is spent)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock.monotonic() + seconds)


def segment(value: str | int) -> str:
    """One URL path segment, fully percent-encoded (``+`` of an E.164 number becomes ``%2B``)."""
    return quote(str(value), safe="")


class ApiClient:
    """A small JSON-over-HTTPS client for one service account. Use as a context manager or close()."""

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        max_retries: int = 2,
        clock: Clock | None = None,
        limiter: SlidingWindowLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service = service
        syntax.check(api_key, syntax.HTTP_HEADER, what=f"the {service} API key")  # callers name the source
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.max_retries = max_retries
        self.clock: Clock = clock or SystemClock()
        self.limiter = limiter
        self._rand = rand
        self.requests = 0
        self.retries = 0
        self.waited = 0.0
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=timeout,
            follow_redirects=False,
            verify=_tls_context(),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "safehold",
                **(headers or {}),
            },
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow_404: bool = False,
    ) -> Any:
        """Send one request (with retries); return its decoded JSON, or None for an allowed 404."""
        what = f"{method} {path}"
        attempt = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            self.requests += 1
            try:
                resp = self._http.request(
                    method,
                    path.lstrip("/"),
                    params=_params(params),
                    json=json,
                    headers=dict(headers or {}),
                )
            except httpx.TransportError as exc:
                if attempt < self.max_retries:
                    self._wait(None, attempt)
                    attempt += 1
                    continue
                raise SourceError(
                    f"{self.service} API unreachable at {self.base_url} ({what}): "
                    f"{type(exc).__name__} after {attempt + 1} attempts",
                    hint="Check the network, the base_url setting and the service's status page.",
                ) from None
            self._note_rate_headers(resp)
            status = resp.status_code
            if status < 300:
                return self._decode(resp, what)
            if status == 404 and allow_404:
                return None
            if status in (401, 403):
                raise SourceError(
                    f"{self.service} API rejected the API key ({what}: HTTP {status}: {self._message(resp)})",
                    hint=KEY_HINT,
                )
            retryable = status in RETRY_STATUSES or status >= 500
            if retryable and attempt < self.max_retries:
                self._wait(resp, attempt)
                attempt += 1
                continue
            tail = f" after {attempt + 1} attempts" if retryable else ""
            raise SourceError(
                f"{self.service} API: {what} failed with HTTP {status}: {self._message(resp)}{tail}",
                hint=_hint_for(status),
            )

    # internals
    def _wait(self, resp: httpx.Response | None, attempt: int) -> None:
        delay = _server_delay(resp) if resp is not None else None
        if delay is None:
            delay = min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF) * (1 - 0.25 * self._rand())
        self.retries += 1
        self.waited += delay
        self.clock.sleep(delay)

    def _note_rate_headers(self, resp: httpx.Response) -> None:
        if self.limiter is None:
            return
        remaining = _number(resp.headers.get("x-ratelimit-remaining-default"))
        reset = _number(resp.headers.get("x-ratelimit-reset-default"))
        if remaining is not None and remaining <= 0 and reset is not None and resp.status_code != 429:
            self.limiter.pause(min(max(reset, 0.0), MAX_SERVER_WAIT))

    def _decode(self, resp: httpx.Response, what: str) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise SourceError(
                f"{self.service} API: {what} returned a response that is not JSON "
                f"(HTTP {resp.status_code}, {resp.headers.get('content-type', 'no content type')})",
                hint="Check the base_url setting: it must point at the API, not a web page.",
            ) from None

    def _message(self, resp: httpx.Response) -> str:
        """The API's own error message (Retell ``message``, Cal.com ``error.message``), scrubbed."""
        text = ""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                code, msg = err.get("code"), err.get("message")
                text = f"{code}: {msg}" if code and msg else str(msg or code or "")
            elif isinstance(body.get("message"), str):
                text = body["message"]
            elif isinstance(err, str):
                text = err
        if not text:
            text = resp.text.strip() or resp.reason_phrase or "no error message"
        text = " ".join(text.split())[:300]
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return text


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (building one reads the CA bundle: ~0.2 s)."""
    return ssl.create_default_context()


def _params(params: Mapping[str, str | int | bool] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _server_delay(resp: httpx.Response) -> float | None:
    """The wait the server asked for, when it is usable (0-60 s); None means: use backoff."""
    ms = _number(resp.headers.get("retry-after-ms"))
    if ms is not None and 0 <= ms / 1000 <= MAX_SERVER_WAIT:
        return ms / 1000
    raw = resp.headers.get("retry-after")
    if raw is not None:
        secs = _number(raw)
        if secs is None:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                secs = (when - datetime.now(UTC)).total_seconds()
        if secs is not None and 0 <= secs <= MAX_SERVER_WAIT:
            return secs
    if resp.status_code == 429:
        reset = _number(resp.headers.get("x-ratelimit-reset-default"))
        if reset is not None and reset >= 0:
            return min(reset, MAX_SERVER_WAIT)
    return None


def _hint_for(status: int) -> str:
    if status == 404:
        return "The object or endpoint does not exist: check the base_url setting and the account."
    if status == 429:
        return "The service kept rate-limiting; run again later or lower the request rate."
    if status >= 500:
        return "The service is failing; check its status page and run again later."
    return "The service refused the request; the message above is the service's own."
