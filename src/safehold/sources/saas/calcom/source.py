"""The ``saas/calcom`` source: what Cal.com exports and how its objects restore (the rest is
:class:`~safehold.sources.saas.source.SaasSource`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SourceError
from safehold.sources.component import ComponentReader
from safehold.sources.saas import refs
from safehold.sources.saas.calcom import restore
from safehold.sources.saas.calcom.client import CalApi, as_list
from safehold.sources.saas.calcom.options import EVENT_TYPES_VERSION, SCHEDULES_VERSION, CalcomOptions
from safehold.sources.saas.common import ObjectKind, dump_json, file_name
from safehold.sources.saas.http import ApiClient, Clock, SlidingWindowLimiter, SystemClock, segment
from safehold.sources.saas.refs import Objects, References
from safehold.sources.saas.source import SaasSource, Saved


class CalcomSource(SaasSource):
    """Export and restore a Cal.com account's scheduling configuration through API v2."""

    kind: ClassVar[str] = "saas/calcom"
    Options: ClassVar[type[BaseModel]] = CalcomOptions
    restore_rank: ClassVar[int] = 100
    export_folder: ClassVar[str | None] = "external-services/calcom"
    export_note: ClassVar[str] = (
        "`{base}/`: Cal.com event types, schedules, teams, memberships and webhooks, one JSON "
        "file per object. Recreate them through the Cal.com API v2 or its settings pages."
    )
    service: ClassVar[str] = "Cal.com"
    service_id: ClassVar[str] = "calcom"
    probe: ClassVar[tuple[str, dict[str, str | int | bool]]] = ("/webhooks", {"skip": 0, "take": 1})
    empty_hint: ClassVar[str] = (
        "Check that the API key belongs to the right account, or set allow_empty = true."
    )
    options: CalcomOptions

    def __init__(
        self, name: str, options: CalcomOptions | Mapping[str, Any], *, clock: Clock | None = None
    ) -> None:
        clock = clock or SystemClock()
        super().__init__(name, options, clock=clock)
        self._limiter = SlidingWindowLimiter(self.options.rate_limit_per_minute, 60.0, clock)

    def client_options(self) -> dict[str, Any]:
        return {"limiter": self._limiter}

    def export(self, api: ApiClient) -> tuple[dict[str, bytes], dict[str, Any]]:
        files, ids = self._objects(CalApi(api))
        counts = {kind: len(v) for kind, v in ids.items()}
        return files, {"format": 1, "service": "calcom", "counts": counts, "ids": ids}

    def export_details(self, index: dict[str, Any], api: ApiClient) -> dict[str, Any]:
        return {"rate_limit_wait_s": round(self._limiter.waited, 3)}

    def references(self) -> Callable[[Objects], References]:
        return refs.calcom

    def saved(self, snap: ComponentReader) -> Saved:
        return restore.saved(snap)

    def object_kinds(self, api: ApiClient) -> list[ObjectKind]:
        return restore.object_kinds(CalApi(api))

    def _objects(self, api: CalApi) -> tuple[dict[str, bytes], dict[str, list[str]]]:
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
