"""``saas/retell``: Retell AI voice agents, their LLMs and conversation flows, and phone numbers.

Export layout under the component's folder (one JSON file per object, sorted keys)::

    agents/<agent_id>.json            latest version of each agent
    agent-versions/<agent_id>.json    all versions (a JSON array), when ``include_versions``
    llms/<llm_id>.json
    conversation-flows/<conversation_flow_id>.json
    phone-numbers/<e164>.json         '+' kept in the file name
    index.json                        what was exported: ids per kind, counts, list API used

Lists: the current ``POST /v2/list-agents`` (summaries, ``has_more`` / ``pagination_key``; each agent is
then fetched with ``GET /get-agent/{id}``) or, with ``list_api = "legacy"`` or when the v2 endpoint
answers 404 under ``"auto"``, the older ``GET /list-agents`` (a plain array of every version, paged by
``pagination_key`` + ``pagination_key_version`` until an empty page). LLMs, flows and phone numbers are
listed the same way and fetched one by one, so a file always holds the full object. Conversation flows
are exported when an agent's ``response_engine.type`` is ``conversation-flow``.

Restore: see :mod:`safehold.sources.saas.retell_restore`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from safehold.config.secrets import SecretRef
from safehold.errors import SourceError
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, SourceContext
from safehold.sources.saas.common import SaasOptions, api_key_for, dump_json, file_name
from safehold.sources.saas.http import ApiClient, Clock, segment

DEFAULT_BASE_URL = "https://api.retellai.com"


class RetellOptions(SaasOptions):
    """Settings of a ``saas/retell`` component."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Retell API base URL (change only for a proxy or a test server).",
        examples=[DEFAULT_BASE_URL],
    )
    list_api: Literal["auto", "v2", "legacy"] = Field(
        default="auto",
        description="Which list endpoints to use: 'v2' (POST /v2/list-agents ...), 'legacy' (GET "
        "/list-agents ...), or 'auto' (v2, falling back to legacy when v2 answers 404).",
        examples=["auto"],
    )
    page_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Items requested per page of a list call (the service may return fewer).",
        examples=[1000],
    )
    include_versions: bool = Field(
        default=True,
        description="Also export every version of each agent to agent-versions/<agent_id>.json.",
        examples=[True],
    )


class RetellSource:
    """Export and restore a Retell AI account's agents, LLMs, conversation flows and phone numbers."""

    kind: ClassVar[str] = "saas/retell"
    Options: ClassVar[type[RetellOptions]] = RetellOptions

    def __init__(self, name: str, options: RetellOptions, *, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
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
        from safehold.sources.saas.retell_restore import restore

        return restore(self, snap, ctx)


class Exporter:
    """One export run: lists and fetches every object, returns path -> bytes and the index. Its list
    methods also serve the restore, to find objects an earlier restore already re-created."""

    def __init__(self, api: ApiClient, options: RetellOptions) -> None:
        self.api = api
        self.opts = options
        self.list_api: Literal["v2", "legacy"] = "legacy" if options.list_api == "legacy" else "v2"

    def run(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        files: dict[str, bytes] = {}
        agents = [self.get_agent(aid) for aid in self.agent_ids()]
        ids: dict[str, list[str]] = {"agents": [], "llms": [], "conversation-flows": [], "phone-numbers": []}
        for agent in agents:
            aid = str(agent["agent_id"])
            ids["agents"].append(aid)
            files[f"agents/{file_name(aid)}"] = dump_json(agent)
            if self.opts.include_versions:
                versions = self.api.request("GET", f"/get-agent-versions/{segment(aid)}")
                files[f"agent-versions/{file_name(aid)}"] = dump_json(versions)
        for llm_id in self.list_ids("list-retell-llms", "llm_id"):
            llm = self.api.request("GET", f"/get-retell-llm/{segment(llm_id)}")
            ids["llms"].append(llm_id)
            files[f"llms/{file_name(llm_id)}"] = dump_json(llm)
        flow_refs = sorted(
            {
                str(a["response_engine"]["conversation_flow_id"])
                for a in agents
                if isinstance(a.get("response_engine"), dict)
                and a["response_engine"].get("type") == "conversation-flow"
                and a["response_engine"].get("conversation_flow_id")
            }
        )
        if flow_refs:
            flow_ids = self.flow_ids()
            flow_ids += [f for f in flow_refs if f not in flow_ids]
            for fid in flow_ids:
                flow = self.api.request("GET", f"/get-conversation-flow/{segment(fid)}", allow_404=True)
                if flow is None:
                    continue
                ids["conversation-flows"].append(fid)
                files[f"conversation-flows/{file_name(fid)}"] = dump_json(flow)
        for number in self.list_ids("list-phone-numbers", "phone_number"):
            phone = self.api.request("GET", f"/get-phone-number/{segment(number)}")
            ids["phone-numbers"].append(number)
            files[f"phone-numbers/{file_name(number)}"] = dump_json(phone)
        index = {
            "format": 1,
            "service": "retell",
            "list_api": self.list_api,
            "counts": {kind: len(v) for kind, v in ids.items()},
            "ids": {kind: sorted(v) for kind, v in ids.items()},
            "agent_versions": self.opts.include_versions,
        }
        return files, index

    def agent_ids(self) -> list[str]:
        """Ids of every agent (each once), through the v2 or the legacy list."""
        if self.list_api == "v2":
            try:
                pages = self._pages_v2("POST", "/v2/list-agents", tolerate_404=self._auto)
                return list(dict.fromkeys(str(i["agent_id"]) for i in pages))
            except _V2Missing:
                self.list_api = "legacy"
        seen: dict[str, None] = {}
        for item in self._pages_legacy("/list-agents", "agent_id", with_version=True):
            seen.setdefault(str(item["agent_id"]), None)
        return list(seen)

    def flow_ids(self) -> list[str]:
        """Ids from the v2 flow list (flows have no older list: [] without it)."""
        if self.list_api != "v2":
            return []
        try:
            pages = self._pages_v2("GET", "/v2/list-conversation-flows", tolerate_404=True)
            return list(dict.fromkeys(str(i["conversation_flow_id"]) for i in pages))
        except _V2Missing:
            return []

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        agent = self.api.request("GET", f"/get-agent/{segment(agent_id)}")
        if not isinstance(agent, dict) or "agent_id" not in agent:
            raise SourceError(f"Retell API: GET /get-agent/{agent_id} returned an unexpected shape")
        return agent

    def list_ids(self, name: str, id_field: str) -> Iterator[str]:
        """Unique ids from ``/v2/<name>`` or ``/<name>`` (whichever list API is in use)."""
        seen: set[str] = set()
        items: Iterator[dict[str, Any]]
        if self.list_api == "v2":
            try:
                items = iter(list(self._pages_v2("GET", f"/v2/{name}", tolerate_404=self._auto)))
            except _V2Missing:
                items = self._pages_legacy(f"/{name}", id_field)
        else:
            items = self._pages_legacy(f"/{name}", id_field)
        for item in items:
            key = str(item[id_field])
            if key not in seen:
                seen.add(key)
                yield key

    def _pages_v2(self, method: str, path: str, *, tolerate_404: bool) -> Iterator[dict[str, Any]]:
        key: str | None = None
        first = True
        while True:
            params: dict[str, str | int | bool] = {"limit": self.opts.page_size}
            if key:
                params["pagination_key"] = key
            page = self.api.request(method, path, params=params, allow_404=first and tolerate_404)
            if page is None:
                raise _V2Missing
            first = False
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise SourceError(f"Retell API: {method} {path} returned an unexpected shape (no items)")
            yield from page["items"]
            key = page.get("pagination_key")
            if not page.get("has_more"):
                return
            if not key:
                raise SourceError(f"Retell API: {method} {path} said has_more without a pagination_key")

    def _pages_legacy(self, path: str, id_field: str, *, with_version: bool = False) -> Iterator[Any]:
        params: dict[str, str | int | bool] = {"limit": self.opts.page_size}
        last: tuple[str, Any] | None = None
        while True:
            page = self.api.request("GET", path, params=params)
            if not isinstance(page, list):
                raise SourceError(f"Retell API: GET {path} returned an unexpected shape (not a list)")
            if not page:
                return
            yield from page
            tail = page[-1]
            here = (str(tail[id_field]), tail.get("version"))
            if here == last:
                return
            last = here
            params = {"limit": self.opts.page_size, "pagination_key": here[0]}
            if with_version and here[1] is not None:
                params["pagination_key_version"] = here[1]

    @property
    def _auto(self) -> bool:
        return self.opts.list_api == "auto"


class _V2Missing(Exception):
    """The v2 list endpoint answered 404 (an older API): fall back to the legacy list."""
