"""The Retell API as the export and the restore use it: :class:`Exporter` lists and fetches every object
(v2 list endpoints with a fallback to the legacy ones)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from safehold.errors import SourceError
from safehold.sources.saas.common import dump_json, file_name
from safehold.sources.saas.http import ApiClient, segment
from safehold.sources.saas.retell.options import RetellOptions


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
