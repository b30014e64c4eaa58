"""What the SaaS kinds share as sources: :class:`SaasSource` does the API client, the export's bookkeeping,
the preflight probe, drift, drills and the plan/apply restore; a service's kind supplies only what is its
own (what to export, which object kinds a restore walks in which order, and its warnings).

A service's kind sets :attr:`SaasSource.service` (its name in messages), :attr:`~SaasSource.service_id`
(in metadata and logs), :attr:`~SaasSource.probe` (a side-effect-free GET for preflight) and
:attr:`~SaasSource.empty_hint`, and implements :meth:`~SaasSource.export`, :meth:`~SaasSource.saved` and
:meth:`~SaasSource.object_kinds`.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SafeholdError, SourceError
from safehold.secrets import SecretRef
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.saas.common import (
    Obj,
    ObjectKind,
    PlanEntry,
    SaasOptions,
    SaasRestoreOptions,
    api_key_for,
    dump_json,
    plan_and_apply,
    summarize,
)
from safehold.sources.saas.diff import diff_exports
from safehold.sources.saas.http import ApiClient, Clock
from safehold.sources.saas.refs import Objects, References
from safehold.sources.verify import Sandbox, VerifyReport

#: Saved objects by folder: (path in the component's folder, object), as a restore reads them.
Saved = dict[str, list[tuple[str, Obj]]]


class SaasSource(Source):
    """A SaaS account's configuration, exported through its API as one JSON file per object and restored
    through it (plan: compare every saved object with the live one; apply: that plan, in dependency
    order, with id remapping)."""

    RestoreOptions: ClassVar[type[BaseModel]] = SaasRestoreOptions
    compares_drift: ClassVar[bool] = True
    #: The service's name in messages (``Retell``, ``Cal.com``).
    service: ClassVar[str]
    #: The service's key in metadata, restore details and the backup log (``retell``, ``calcom``).
    service_id: ClassVar[str]
    #: The preflight's side-effect-free GET: (path, query) of a small list endpoint.
    probe: ClassVar[tuple[str, dict[str, str | int | bool]]]
    #: What to check when an export holds no object at all.
    empty_hint: ClassVar[str]
    options: SaasOptions

    def __init__(
        self, name: str, options: BaseModel | Mapping[str, Any], *, clock: Clock | None = None
    ) -> None:
        super().__init__(name, options)
        self._clock = clock

    # ---------------------------------------------------------------------------- the service's own
    @abstractmethod
    def export(self, api: ApiClient) -> tuple[dict[str, bytes], dict[str, Any]]:
        """Every object as ``path -> bytes`` and the index (``counts`` per object kind, ids...)."""

    @abstractmethod
    def saved(self, snap: ComponentReader) -> Saved:
        """The saved objects of a snapshot's folder, by the folder each object kind restores from."""

    @abstractmethod
    def object_kinds(self, api: ApiClient) -> list[ObjectKind]:
        """The object kinds a restore walks, in dependency order, with their API calls."""

    def client_options(self) -> dict[str, Any]:
        """Extra keyword arguments of this service's :class:`ApiClient` (a rate limiter)."""
        return {}

    def export_details(self, index: dict[str, Any], api: ApiClient) -> dict[str, Any]:
        """Extra metadata of a backup, from the export's index and client."""
        return {}

    def references(self) -> Callable[[Objects], References] | None:
        """The references between exported objects a drill checks (:mod:`safehold.sources.saas.refs`)."""
        return None

    def write_only(self, saved: Saved) -> list[dict[str, str]]:
        """Values the API never returns, so no export holds them (``object``, ``field``, ``message``)."""
        return []

    def restore_warnings(self, saved: Saved, entries: list[PlanEntry], snap: ComponentReader) -> list[str]:
        """Warnings of a restore beyond write-only values and missing objects."""
        return []

    # ------------------------------------------------------------------------------------- client
    def client(
        self, base_url: str | None = None, api_key: SecretRef | dict[str, Any] | None = None
    ) -> ApiClient:
        """An API client for this account (or for ``base_url`` / ``api_key`` reference overrides); the
        key is checked for the HTTP header it goes into before any request."""
        return ApiClient(
            service=self.service,
            base_url=base_url or self.options.base_url,
            api_key=api_key_for(self.name, api_key or self.options.api_key),
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            clock=self._clock,
            **self.client_options(),
        )

    # ------------------------------------------------------------------------------------- backup
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Export every object; return counts, the base URL and timings."""
        started = time.monotonic()
        with self.client() as api:
            files, index = self.export(api)
        if not files and not self.options.allow_empty:
            raise SourceError(
                f"{self.service} export of {self.name} produced no objects at all", hint=self.empty_hint
            )
        for path in sorted(files):
            out.add_bytes(path, files[path])
        out.add_bytes("index.json", dump_json(index))
        counts = index["counts"]
        line = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        out.log(f"{self.service_id}: exported {line} from {api.base_url}")
        ctx.log(f"{self.name}: exported {line}")
        return {
            "service": self.service_id,
            "base_url": api.base_url,
            **self.export_details(index, api),
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
                api.request("GET", self.probe[0], params=self.probe[1])
            checks.passed(
                "api", f"{o.base_url} answers GET {self.probe[0]} with this API key ({o.api_key.describe()})"
            )

        checks.guard("api", probe)
        return checks.findings

    @classmethod
    def drift(cls, old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
        return diff_exports(old, new)

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: the export parses, holds exactly the objects its index lists, and its references
        between objects resolve (no API call)."""
        from safehold.sources.saas.verify import verify_export

        return verify_export(self.name, snap, sandbox, ctx, self.references())

    # ------------------------------------------------------------------------------------ restore
    def safety_source(self, ctx: SourceContext) -> Source | None:
        """The live account's configuration, unless the restore goes to another one (``base_url``)."""
        ro: SaasRestoreOptions = self.restore_options(ctx.options)
        return None if ro.base_url else self

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Compare every saved object with the live one (``RestoreOptions`` may point at another
        ``base_url`` / ``api_key``); changes nothing."""
        ro: SaasRestoreOptions = self.restore_options(ctx.options)
        report, entries = self._walk(snap, ro, ctx, dry_run=True)
        return RestorePlan(
            report.component, report.actions, report.warnings, report.details, list(entries), ro
        )

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Apply the plan in dependency order; an object whose live state changed since the plan was made
        stops the restore (SourceError) before it is touched."""
        report, _entries = self._walk(snap, plan.options, ctx, dry_run=False, expected=plan.steps)
        return report

    def _walk(
        self,
        snap: ComponentReader,
        ro: SaasRestoreOptions,
        ctx: SourceContext,
        *,
        dry_run: bool,
        expected: list[PlanEntry] | None = None,
    ) -> tuple[RestoreReport, list[PlanEntry]]:
        saved = self.saved(snap)
        if not any(saved.values()):
            raise SourceError(
                f"the snapshot's {self.name} folder holds no {self.service} export",
                hint="Pick a snapshot in which this component's backup succeeded ('safehold snapshots').",
            )
        base_url = ro.base_url or self.options.base_url
        with self.client(base_url, ro.api_key) as api:
            entries, ids = plan_and_apply(
                self.object_kinds(api), saved, dry_run=dry_run, log=ctx.log, expected=expected
            )
        report = RestoreReport(component=self.name)
        report.actions = [e.line() for e in entries]
        write_only = self.write_only(saved)
        report.warnings.extend(w["message"] for w in write_only)
        for e in entries:
            if e.action == "missing":
                report.warnings.append(f"{e.kind} {e.key} is missing from the account and was not restored")
        report.warnings.extend(self.restore_warnings(saved, entries, snap))
        report.details = {
            "service": self.service_id,
            "base_url": base_url,
            "dry_run": dry_run,
            "counts": summarize(entries),
            "plan": [e.as_dict() for e in entries],
            "id_map": ids.ids,
            "write_only": write_only,
        }
        return report, entries
