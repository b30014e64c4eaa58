"""The ``saas/retell`` source: export (backup); restore is in :mod:`.restore`."""

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
from safehold.sources.saas.common import SaasRestoreOptions, api_key_for, dump_json
from safehold.sources.saas.diff import diff_exports
from safehold.sources.saas.http import ApiClient, Clock
from safehold.sources.saas.retell.client import Exporter
from safehold.sources.saas.retell.options import RetellOptions
from safehold.sources.saas.retell.restore import restore
from safehold.sources.verify import Sandbox, VerifyReport

#: The preflight's side-effect-free GET: (path, query) of a small list endpoint.
PROBE: tuple[str, dict[str, str | int | bool]] = ("/list-phone-numbers", {})


class RetellSource(Source):
    """Export and restore a Retell AI account's agents, LLMs, conversation flows and phone numbers."""

    kind: ClassVar[str] = "saas/retell"
    Options: ClassVar[type[BaseModel]] = RetellOptions
    RestoreOptions: ClassVar[type[BaseModel]] = SaasRestoreOptions
    restore_rank: ClassVar[int] = 90
    export_folder: ClassVar[str | None] = "external-services/retell"
    export_note: ClassVar[str] = (
        "`{base}/`: Retell AI agents, LLMs, conversation flows and phone numbers, one JSON "
        "file per object (`index.json` lists them). Recreate through the Retell API (POST the saved agent "
        "and LLM configs) and point the phone numbers at the new agents."
    )
    compares_drift: ClassVar[bool] = True
    options: RetellOptions

    def __init__(
        self, name: str, options: RetellOptions | Mapping[str, Any], *, clock: Clock | None = None
    ) -> None:
        super().__init__(name, options)
        self._clock = clock

    def client(
        self, base_url: str | None = None, api_key: SecretRef | dict[str, Any] | None = None
    ) -> ApiClient:
        """An API client for this account (or for ``base_url`` / ``api_key`` reference overrides); the
        key is checked for the HTTP header it goes into before any request."""
        return ApiClient(
            service="Retell",
            base_url=base_url or self.options.base_url,
            api_key=api_key_for(self.name, api_key or self.options.api_key),
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            clock=self._clock,
        )

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Export every object; return counts, the base URL, the list API used and timings."""
        started = time.monotonic()
        with self.client() as api:
            exporter = Exporter(api, self.options)
            files, index = exporter.run()
        if not files and not self.options.allow_empty:
            raise SourceError(
                f"Retell export of {self.name} produced no objects at all",
                hint="Check that the API key belongs to the right workspace, or set allow_empty = true.",
            )
        for path in sorted(files):
            out.add_bytes(path, files[path])
        out.add_bytes("index.json", dump_json(index))
        counts = index["counts"]
        line = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        out.log(f"retell: exported {line} from {api.base_url}")
        ctx.log(f"{self.name}: exported {line}")
        return {
            "service": "retell",
            "base_url": api.base_url,
            "list_api": index["list_api"],
            "counts": counts,
            "requests": api.requests,
            "retries": api.retries,
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

        return verify_export(self.name, snap, sandbox, ctx, refs.retell)

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
