"""``saas/calcom``: Cal.com (API v2) event types, schedules, teams, memberships and webhooks.

Export layout under the component's folder (one JSON file per object, sorted keys)::

    event-types/<id>.json                       GET /event-types        (cal-api-version 2024-06-14)
    schedules/<id>.json                         GET /schedules          (cal-api-version 2024-06-11)
    teams/<teamId>.json                         GET /teams
    teams/<teamId>/event-types/<id>.json        GET /teams/{teamId}/event-types
    teams/<teamId>/memberships/<id>.json        GET /teams/{teamId}/memberships   (skip/take)
    webhooks/<id>.json                          GET /webhooks                     (skip/take)
    index.json                                  ids and counts per kind

Every response is the envelope ``{"status": "success", "data": ...}``. Cal.com allows 120 requests per
60 s per key and then blocks for 60 s, so a client-side limiter (``rate_limit_per_minute``) spaces the
requests, and a 429 waits for ``X-RateLimit-Reset-Default`` (Cal.com sends no ``Retry-After``).

Restore: see :mod:`safehold.sources.saas.calcom_restore`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import Field

from safehold.config.secrets import SecretRef
from safehold.errors import SourceError
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, SourceContext
from safehold.sources.saas.common import SaasOptions, api_key_for, dump_json, file_name
from safehold.sources.saas.http import ApiClient, Clock, SlidingWindowLimiter, SystemClock, segment

DEFAULT_BASE_URL = "https://api.cal.com/v2"
EVENT_TYPES_VERSION = "2024-06-14"
SCHEDULES_VERSION = "2024-06-11"


class CalcomOptions(SaasOptions):
    """Settings of a ``saas/calcom`` component."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Cal.com API v2 base URL (a self-hosted instance's /v2, a proxy or a test server).",
        examples=[DEFAULT_BASE_URL],
    )
    rate_limit_per_minute: int = Field(
        default=120,
        ge=1,
        le=10_000,
        description="Client-side limit of requests per 60 s (Cal.com allows 120 per API key).",
        examples=[120],
    )
    page_size: int = Field(
        default=250,
        ge=1,
        le=250,
        description="'take' of paginated lists (memberships, webhooks); the API's maximum is 250.",
        examples=[250],
    )
    include_teams: bool = Field(
        default=True,
        description="Export teams with their event types and memberships.",
        examples=[True],
    )
    include_webhooks: bool = Field(
        default=True,
        description="Export webhooks.",
        examples=[True],
    )


class CalApi:
    """Cal.com calls: the envelope unwrapped, the ``cal-api-version`` header set per endpoint."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        *,
        version: str | None = None,
        params: Mapping[str, str | int | bool] | None = None,
        json: Any = None,
        allow_404: bool = False,
    ) -> Any:
        """The ``data`` of the envelope (None for an allowed 404)."""
        headers = {"cal-api-version": version} if version else None
        body = self.client.request(
            method, path, params=params, json=json, headers=headers, allow_404=allow_404
        )
        if body is None and allow_404:
            return None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise SourceError(
                f"Cal.com API: {method} {path} answered without the success envelope",
                hint="Check the base_url setting: it must end in /v2 of a Cal.com API.",
            )
        return body["data"]

    def pages(self, path: str, take: int) -> Iterator[dict[str, Any]]:
        """Every item of a skip/take list."""
        skip = 0
        while True:
            data = self.call("GET", path, params={"skip": skip, "take": take})
            if not isinstance(data, list):
                raise SourceError(f"Cal.com API: GET {path} returned an unexpected shape (not a list)")
            yield from data
            if len(data) < take:
                return
            skip += take


class CalcomSource:
    """Export and restore a Cal.com account's scheduling configuration through API v2."""

    kind: ClassVar[str] = "saas/calcom"
    Options: ClassVar[type[CalcomOptions]] = CalcomOptions

    def __init__(self, name: str, options: CalcomOptions, *, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self._clock = clock or SystemClock()
        self._limiter = SlidingWindowLimiter(options.rate_limit_per_minute, 60.0, self._clock)

    def client(
        self, base_url: str | None = None, api_key: SecretRef | dict[str, Any] | None = None
    ) -> ApiClient:
        """An API client for this account (or for ``base_url`` / ``api_key`` reference overrides); the
        key is checked for the HTTP header it goes into before any request."""
        return ApiClient(
            service="Cal.com",
            base_url=base_url or self.options.base_url,
            api_key=api_key_for(self.name, api_key or self.options.api_key),
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            clock=self._clock,
            limiter=self._limiter,
        )

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Export every object; return counts, the base URL and timings."""
        started = time.monotonic()
        with self.client() as client:
            files, ids = self._export(CalApi(client))
        if not files and not self.options.allow_empty:
            raise SourceError(
                f"Cal.com export of {self.name} produced no objects at all",
                hint="Check that the API key belongs to the right account, or set allow_empty = true.",
            )
        for path in sorted(files):
            out.add_bytes(path, files[path])
        counts = {kind: len(v) for kind, v in ids.items()}
        out.add_bytes(
            "index.json",
            dump_json({"format": 1, "service": "calcom", "counts": counts, "ids": ids}),
        )
        line = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        out.log(f"calcom: exported {line} from {client.base_url}")
        ctx.log(f"{self.name}: exported {line}")
        return {
            "service": "calcom",
            "base_url": client.base_url,
            "counts": counts,
            "requests": client.requests,
            "retries": client.retries,
            "rate_limit_wait_s": round(self._limiter.waited, 3),
            "duration_s": round(time.monotonic() - started, 3),
        }

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Plan (``ctx.dry_run``) or plan and apply; ``ctx.options`` may override base_url / api_key."""
        from safehold.sources.saas.calcom_restore import restore

        return restore(self, snap, ctx)

    def _export(self, api: CalApi) -> tuple[dict[str, bytes], dict[str, list[str]]]:
        files: dict[str, bytes] = {}
        ids: dict[str, list[str]] = {
            "event-types": [],
            "schedules": [],
            "teams": [],
            "team-event-types": [],
            "memberships": [],
            "webhooks": [],
        }

        def put(kind: str, folder: str, obj: Any, *, key: str = "id") -> None:
            if not isinstance(obj, dict) or obj.get(key) is None:
                raise SourceError(f"Cal.com API: an object in {folder} has no {key!r}")
            ids[kind].append(f"{folder}/{obj[key]}")
            files[f"{folder}/{file_name(obj[key])}"] = dump_json(obj)

        for et in _as_list(api.call("GET", "/event-types", version=EVENT_TYPES_VERSION), "/event-types"):
            put("event-types", "event-types", et)
        for sc in _as_list(api.call("GET", "/schedules", version=SCHEDULES_VERSION), "/schedules"):
            put("schedules", "schedules", sc)
        if self.options.include_teams:
            for team in _as_list(api.call("GET", "/teams"), "/teams"):
                put("teams", "teams", team)
                tid = segment(team["id"])
                folder = f"teams/{file_name(team['id'])[: -len('.json')]}"
                path = f"/teams/{tid}/event-types"
                for et in _as_list(api.call("GET", path), path):
                    put("team-event-types", f"{folder}/event-types", et)
                for member in api.pages(f"/teams/{tid}/memberships", self.options.page_size):
                    put("memberships", f"{folder}/memberships", member)
        if self.options.include_webhooks:
            for hook in api.pages("/webhooks", self.options.page_size):
                put("webhooks", "webhooks", hook)
        return files, {k: sorted(v) for k, v in ids.items()}


def _as_list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list):
        raise SourceError(f"Cal.com API: GET {path} returned an unexpected shape (not a list)")
    return data
