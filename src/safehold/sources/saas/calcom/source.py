"""The ``saas/calcom`` source: export (backup); restore is in :mod:`.restore`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SafeholdError, SourceError
from safehold.secrets import SecretRef
from safehold.sources.base import (
    ComponentReader,
    ComponentWriter,
    Finding,
    RestorePlan,
    RestoreReport,
    Source,
    SourceContext,
)
from safehold.sources.checks import Checks
from safehold.sources.saas.calcom.client import CalApi, as_list
from safehold.sources.saas.calcom.options import EVENT_TYPES_VERSION, SCHEDULES_VERSION, CalcomOptions
from safehold.sources.saas.calcom.restore import restore
from safehold.sources.saas.common import SaasRestoreOptions, api_key_for, dump_json, file_name
from safehold.sources.saas.diff import diff_exports
from safehold.sources.saas.http import ApiClient, Clock, SlidingWindowLimiter, SystemClock, segment
from safehold.sources.verify import Sandbox, VerifyReport

#: The preflight's side-effect-free GET: (path, query) of a small list endpoint.
PROBE: tuple[str, dict[str, str | int | bool]] = ("/webhooks", {"skip": 0, "take": 1})


class CalcomSource(Source):
    """Export and restore a Cal.com account's scheduling configuration through API v2."""

    kind: ClassVar[str] = "saas/calcom"
    Options: ClassVar[type[BaseModel]] = CalcomOptions
    RestoreOptions: ClassVar[type[BaseModel]] = SaasRestoreOptions
    restore_rank: ClassVar[int] = 100
    export_folder: ClassVar[str | None] = "external-services/calcom"
    export_note: ClassVar[str] = (
        "`{base}/`: Cal.com event types, schedules, teams, memberships and webhooks, one JSON "
        "file per object. Recreate them through the Cal.com API v2 or its settings pages."
    )
    compares_drift: ClassVar[bool] = True
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

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        """The API key resolves, and a side-effect-free GET of a small list answers with it."""
        checks = Checks(self.name)
        o = self.options
        try:
            o.api_key.resolve()
        except SafeholdError as exc:
            checks.problem(
                "api_key", f"API key ({o.api_key.describe()}) does not resolve: {exc.message}", exc.hint
            )
            return checks.findings

        def probe() -> None:
            with self.client() as api:
                api.request("GET", PROBE[0], params=PROBE[1])
            checks.passed(
                "api", f"{o.base_url} answers GET {PROBE[0]} with this API key ({o.api_key.describe()})"
            )

        checks.guard("api", probe)
        return checks.findings

    @classmethod
    def drift(cls, old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
        return diff_exports(old, new)

    def safety_source(self, ctx: SourceContext) -> Source | None:
        """The live account's configuration, unless the restore goes to another one (``base_url``)."""
        ro: SaasRestoreOptions = self.restore_options(ctx.options)
        return None if ro.base_url else self

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: the export parses, holds exactly the objects its index lists, and its references
        between objects resolve (no API call)."""
        from safehold.sources.saas import refs
        from safehold.sources.saas.verify import verify_export

        return verify_export(self.name, snap, sandbox, ctx, refs.calcom)

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Compare every saved object with the live one (``RestoreOptions`` may point at another
        ``base_url`` / ``api_key``); changes nothing."""
        ro: SaasRestoreOptions = self.restore_options(ctx.options)
        report, entries = restore(self.name, self.options, self.client, snap, ro, dry_run=True, log=ctx.log)
        return RestorePlan(
            report.component, report.actions, report.warnings, report.details, list(entries), ro
        )

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Apply the plan in dependency order; an object whose live state changed since the plan was made
        stops the restore (SourceError) before it is touched."""
        report, _entries = restore(
            self.name,
            self.options,
            self.client,
            snap,
            plan.options,
            dry_run=False,
            log=ctx.log,
            expected=plan.steps,
        )
        return report

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
