"""The ``saas/calcom`` source: export (backup); restore is in :mod:`.restore`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SourceError
from safehold.secrets import SecretRef
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, Source, SourceContext
from safehold.sources.saas.calcom.client import CalApi, as_list
from safehold.sources.saas.calcom.options import EVENT_TYPES_VERSION, SCHEDULES_VERSION, CalcomOptions
from safehold.sources.saas.calcom.restore import restore
from safehold.sources.saas.common import api_key_for, dump_json, file_name
from safehold.sources.saas.http import ApiClient, Clock, SlidingWindowLimiter, SystemClock, segment


class CalcomSource(Source):
    """Export and restore a Cal.com account's scheduling configuration through API v2."""

    kind: ClassVar[str] = "saas/calcom"
    Options: ClassVar[type[BaseModel]] = CalcomOptions
    options: CalcomOptions

    def __init__(
        self, name: str, options: CalcomOptions | Mapping[str, Any], *, clock: Clock | None = None
    ) -> None:
        super().__init__(name, options)
        self._clock = clock or SystemClock()
        self._limiter = SlidingWindowLimiter(self.options.rate_limit_per_minute, 60.0, self._clock)

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
        return restore(self.name, self.options, self.client, snap, ctx)

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

        for et in as_list(api.call("GET", "/event-types", version=EVENT_TYPES_VERSION), "/event-types"):
            put("event-types", "event-types", et)
        for sc in as_list(api.call("GET", "/schedules", version=SCHEDULES_VERSION), "/schedules"):
            put("schedules", "schedules", sc)
        if self.options.include_teams:
            for team in as_list(api.call("GET", "/teams"), "/teams"):
                put("teams", "teams", team)
                tid = segment(team["id"])
                folder = f"teams/{file_name(team['id'])[: -len('.json')]}"
                path = f"/teams/{tid}/event-types"
                for et in as_list(api.call("GET", path), path):
                    put("team-event-types", f"{folder}/event-types", et)
                for member in api.pages(f"/teams/{tid}/memberships", self.options.page_size):
                    put("memberships", f"{folder}/memberships", member)
        if self.options.include_webhooks:
            for hook in api.pages("/webhooks", self.options.page_size):
                put("webhooks", "webhooks", hook)
        return files, {k: sorted(v) for k, v in ids.items()}
