"""The ``saas/retell`` source: export (backup); restore is in :mod:`.restore`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SourceError
from safehold.secrets import SecretRef
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, Source, SourceContext
from safehold.sources.saas.common import api_key_for, dump_json
from safehold.sources.saas.http import ApiClient, Clock
from safehold.sources.saas.retell.client import Exporter
from safehold.sources.saas.retell.options import RetellOptions
from safehold.sources.saas.retell.restore import restore


class RetellSource(Source):
    """Export and restore a Retell AI account's agents, LLMs, conversation flows and phone numbers."""

    kind: ClassVar[str] = "saas/retell"
    Options: ClassVar[type[BaseModel]] = RetellOptions
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

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Plan (``ctx.dry_run``) or plan and apply; ``ctx.options`` may override base_url / api_key."""
        return restore(self.name, self.options, self.client, snap, ctx)
