"""The ``saas/retell`` source: what Retell exports and how its objects restore (the rest is
:class:`~safehold.sources.saas.source.SaasSource`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.sources.component import ComponentReader
from safehold.sources.saas import refs
from safehold.sources.saas.common import ObjectKind, PlanEntry
from safehold.sources.saas.http import ApiClient
from safehold.sources.saas.refs import Objects, References
from safehold.sources.saas.retell import restore
from safehold.sources.saas.retell.client import Exporter
from safehold.sources.saas.retell.options import RetellOptions
from safehold.sources.saas.source import SaasSource, Saved


class RetellSource(SaasSource):
    """Export and restore a Retell AI account's agents, LLMs, conversation flows and phone numbers."""

    kind: ClassVar[str] = "saas/retell"
    Options: ClassVar[type[BaseModel]] = RetellOptions
    restore_rank: ClassVar[int] = 90
    export_folder: ClassVar[str | None] = "external-services/retell"
    export_note: ClassVar[str] = (
        "`{base}/`: Retell AI agents, LLMs, conversation flows and phone numbers, one JSON "
        "file per object (`index.json` lists them). Recreate through the Retell API (POST the saved agent "
        "and LLM configs) and point the phone numbers at the new agents."
    )
    service: ClassVar[str] = "Retell"
    service_id: ClassVar[str] = "retell"
    probe: ClassVar[tuple[str, dict[str, str | int | bool]]] = ("/list-phone-numbers", {})
    empty_hint: ClassVar[str] = (
        "Check that the API key belongs to the right workspace, or set allow_empty = true."
    )
    options: RetellOptions

    def export(self, api: ApiClient) -> tuple[dict[str, bytes], dict[str, Any]]:
        return Exporter(api, self.options).run()

    def export_details(self, index: dict[str, Any], api: ApiClient) -> dict[str, Any]:
        return {"list_api": index["list_api"]}

    def references(self) -> Callable[[Objects], References]:
        return refs.retell

    def saved(self, snap: ComponentReader) -> Saved:
        return restore.saved(snap)

    def object_kinds(self, api: ApiClient) -> list[ObjectKind]:
        return restore.object_kinds(api, Exporter(api, self.options))

    def write_only(self, saved: Saved) -> list[dict[str, str]]:
        return restore.write_only(saved["phone-numbers"])

    def restore_warnings(self, saved: Saved, entries: list[PlanEntry], snap: ComponentReader) -> list[str]:
        return restore.warnings(saved, entries, snap)
