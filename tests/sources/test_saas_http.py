"""The shared SaaS HTTP client: retries, Retry-After, backoff, rate limiting, error messages."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from safehold.errors import SourceError
from safehold.sources.saas.http import ApiClient, SlidingWindowLimiter, _server_delay
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_server import FakeClock, FakeSaasServer

KEY = "key_http_test_abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock):
    app = FakeRetell(api_key=KEY, clock=clock)
    app.add_llm(llm_id="llm_1", general_prompt="x")
    with FakeSaasServer(app) as server:
        yield server, app


def client(url: str, clock: FakeClock, key: str = KEY, **kw) -> ApiClient:
    return ApiClient(service="Retell", base_url=url, api_key=key, clock=clock, rand=lambda: 0.0, **kw)


def test_backoff_doubles_without_retry_after(fake, clock) -> None:
    server, app = fake
    app.faults.fail_500 = 3
    with client(server.url, clock, max_retries=3) as api:
        assert api.request("GET", "/get-retell-llm/llm_1")["llm_id"] == "llm_1"
        assert api.retries == 3
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_capped_and_jittered(fake, clock) -> None:
    server, app = fake
    app.faults.fail_500 = 6
    api = ApiClient(
        service="Retell", base_url=server.url, api_key=KEY, clock=clock, max_retries=6, rand=lambda: 1.0
    )
    with api:
        api.request("GET", "/get-retell-llm/llm_1")
    assert clock.sleeps == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]  # 8 s cap, minus 25 % jitter


def test_retry_after_seconds_honoured(fake, clock) -> None:
    server, app = fake
    app.faults.fail_429, app.faults.retry_after = 2, "12"
    with client(server.url, clock) as api:
        api.request("GET", "/get-retell-llm/llm_1")
    assert clock.sleeps == [12.0, 12.0]


def test_retry_after_beyond_60s_falls_back_to_backoff(fake, clock) -> None:
    server, app = fake
    app.faults.fail_429, app.faults.retry_after = 1, "3600"
    with client(server.url, clock) as api:
        api.request("GET", "/get-retell-llm/llm_1")
    assert clock.sleeps == [0.5]


def test_server_delay_forms() -> None:
    req = httpx.Request("GET", "http://x")
    assert _server_delay(httpx.Response(429, headers={"retry-after-ms": "1500"}, request=req)) == 1.5
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = _server_delay(httpx.Response(503, headers={"retry-after": when}, request=req))
    assert delay is not None and 25 <= delay <= 30
    assert _server_delay(httpx.Response(429, headers={"x-ratelimit-reset-default": "90"}, request=req)) == 60
    assert _server_delay(httpx.Response(500, headers={"x-ratelimit-reset-default": "5"}, request=req)) is None
    assert _server_delay(httpx.Response(429, headers={"retry-after": "soon"}, request=req)) is None


def test_429_exhausted_fails_with_status_and_message(fake, clock) -> None:
    server, app = fake
    app.faults.fail_429 = 10
    with client(server.url, clock) as api, pytest.raises(SourceError) as info:
        api.request("GET", "/get-retell-llm/llm_1")
    assert info.value.message == (
        "Retell API: GET /get-retell-llm/llm_1 failed with HTTP 429: Too many requests after 3 attempts"
    )
    assert len(app.log) == 3


def test_404_allowed_or_error(fake, clock) -> None:
    server, _app = fake
    with client(server.url, clock) as api:
        assert api.request("GET", "/get-retell-llm/nope", allow_404=True) is None
        with pytest.raises(SourceError, match="HTTP 404: LLM nope not found"):
            api.request("GET", "/get-retell-llm/nope")
    assert clock.sleeps == []


def test_400_not_retried(fake, clock) -> None:
    server, app = fake
    with (
        client(server.url, clock) as api,
        pytest.raises(SourceError, match="read-only fields in body: llm_id"),
    ):
        api.request("PATCH", "/update-retell-llm/llm_1", json={"llm_id": "x"})
    assert len(app.log) == 1


def test_unreachable_retries_then_fails(clock) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with client(f"http://127.0.0.1:{port}", clock) as api, pytest.raises(SourceError) as info:
        api.request("GET", "/list-agents")
    assert "unreachable" in info.value.message and "ConnectError after 3 attempts" in info.value.message
    assert clock.sleeps == [0.5, 1.0]


def test_sliding_window_limiter(clock) -> None:
    limiter = SlidingWindowLimiter(3, 60.0, clock)
    for _ in range(7):
        limiter.acquire()
    assert clock.sleeps == [60.0, 60.0]
    limiter.pause(10)
    limiter.acquire()
    assert clock.sleeps[-1] == pytest.approx(10.0)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 60.0, clock)
