"""A stateful fake of the Retell AI API, as ``/work/shared/reference/saas-apis.md`` describes it.

State: ``agents`` (agent_id -> list of versions, oldest first), ``llms``, ``flows``, ``phones``
(E.164 -> object). Endpoints: the v2 lists (``has_more`` / ``pagination_key``; at most ``max_page`` items
per page whatever ``limit`` says, so pagination is exercised), the older array lists (``limit`` 1-1000,
``pagination_key`` exclusive, ``pagination_key_version`` for agents), get/create/update of agents, LLMs,
conversation flows and phone numbers, agent versions, publish. ``v2_enabled = False`` makes the v2
lists answer 404, as an older API would.

Deliberate strictness (so that a client bug shows up as a failure): an update whose body carries a
read-only field answers 400; an agent whose ``response_engine`` names an LLM or flow that does not exist
answers 400, as does a phone number routed to a missing agent or whose agent weights do not sum to 1.
``POST /create-conversation-flow`` is implemented although the reference table lists only get/update/list
for flows (the real API has it; the restore uses it to re-create a deleted flow).
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from tests.fakes.saas_server import ApiError, FakeApi, Reply, Request

AGENT_RO = {
    "agent_id",
    "version",
    "is_published",
    "last_modification_timestamp",
    "base_version",
    "assigned_tags",
}
LLM_RO = {"llm_id", "version", "is_published", "last_modification_timestamp"}
FLOW_RO = {"conversation_flow_id", "version", "is_published", "last_modification_timestamp"}
PHONE_RO = {
    "phone_number",
    "phone_number_type",
    "phone_number_pretty",
    "area_code",
    "last_modification_timestamp",
    "sip_outbound_trunk_config",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeRetell(FakeApi):
    unauthorized = "Unauthorized: invalid API key"

    def __init__(self, api_key: str = "key_test_retell", clock: Any = None, max_page: int = 1000) -> None:
        super().__init__(api_key, clock)
        self.max_page = max_page
        self.v2_enabled = True
        self.agents: dict[str, list[dict[str, Any]]] = {}
        self.llms: dict[str, dict[str, Any]] = {}
        self.flows: dict[str, dict[str, Any]] = {}
        self.phones: dict[str, dict[str, Any]] = {}
        r = self.route
        r("POST", "/v2/list-agents", self.v2_list_agents)
        r("GET", "/list-agents", self.legacy_list_agents)
        r("GET", "/get-agent/([^/]+)", self.get_agent)
        r("POST", "/create-agent", self.create_agent)
        r("PATCH", "/update-agent/([^/]+)", self.update_agent)
        r("GET", "/get-agent-versions/([^/]+)", self.get_agent_versions)
        r("POST", "/publish-agent-version/([^/]+)", self.publish_agent_version)
        r("GET", "/v2/list-retell-llms", lambda q: self.v2_list(q, self.llms, "llm_id"))
        r("GET", "/list-retell-llms", lambda q: self.legacy_list(q, self.llms, "llm_id"))
        r("GET", "/get-retell-llm/([^/]+)", lambda q, k: self.get(self.llms, k, "LLM"))
        r("POST", "/create-retell-llm", lambda q: self.create(q, self.llms, "llm_id", "llm_", LLM_RO))
        r("PATCH", "/update-retell-llm/([^/]+)", lambda q, k: self.update(q, self.llms, k, LLM_RO, "LLM"))
        r("GET", "/v2/list-conversation-flows", lambda q: self.v2_list(q, self.flows, "conversation_flow_id"))
        r("GET", "/get-conversation-flow/([^/]+)", lambda q, k: self.get(self.flows, k, "flow"))
        r(
            "POST",
            "/create-conversation-flow",
            lambda q: self.create(q, self.flows, "conversation_flow_id", "conversation_flow_", FLOW_RO),
        )
        r(
            "PATCH",
            "/update-conversation-flow/([^/]+)",
            lambda q, k: self.update(q, self.flows, k, FLOW_RO, "flow"),
        )
        r("GET", "/v2/list-phone-numbers", lambda q: self.v2_list(q, self.phones, "phone_number", 50))
        r("GET", "/list-phone-numbers", lambda q: self.legacy_list(q, self.phones, "phone_number"))
        r("GET", "/get-phone-number/([^/]+)", lambda q, k: self.get(self.phones, k, "phone number"))
        r("PATCH", "/update-phone-number/([^/]+)", self.update_phone)

    # service shapes
    def error_body(self, req: Request, status: int, message: str, code: str) -> Any:
        return {"status": "error", "message": message}

    def fault_429(self, req: Request) -> Reply:
        headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after is not None else {}
        return Reply(429, {"status": "error", "message": "Too many requests"}, headers)

    # seeding helpers for tests
    def add_llm(self, **fields: Any) -> dict[str, Any]:
        llm = {"version": 0, "is_published": False, "last_modification_timestamp": _now_ms(), **fields}
        llm.setdefault("llm_id", "llm_" + secrets.token_hex(12))
        self.llms[llm["llm_id"]] = llm
        return llm

    def add_flow(self, **fields: Any) -> dict[str, Any]:
        flow = {"version": 0, "is_published": False, "last_modification_timestamp": _now_ms(), **fields}
        flow.setdefault("conversation_flow_id", "conversation_flow_" + secrets.token_hex(12))
        self.flows[flow["conversation_flow_id"]] = flow
        return flow

    def add_agent(self, versions: int = 1, **fields: Any) -> dict[str, Any]:
        agent_id = fields.pop("agent_id", None) or secrets.token_hex(16)
        out = []
        for v in range(versions):
            out.append(
                {
                    "agent_id": agent_id,
                    "version": v,
                    "is_published": v < versions - 1,
                    "base_version": v - 1 if v else None,
                    "last_modification_timestamp": _now_ms(),
                    "channel": "voice",
                    **copy.deepcopy(fields),
                }
            )
        self.agents[agent_id] = out
        return out[-1]

    def add_phone(self, number: str, **fields: Any) -> dict[str, Any]:
        phone = {
            "phone_number": number,
            "phone_number_type": "retell-twilio",
            "phone_number_pretty": number,
            "area_code": int(number[2:5]),
            "last_modification_timestamp": _now_ms(),
            **fields,
        }
        self.phones[number] = phone
        return phone

    def latest(self, agent_id: str) -> dict[str, Any]:
        return self.agents[agent_id][-1]

    # pagination
    def _page(self, q: Request, keys: list[str], default: int) -> tuple[list[str], str | None]:
        limit = min(int(q.query.get("limit", default)), self.max_page)
        after = q.query.get("pagination_key")
        if q.query.get("sort_order") == "descending":
            keys = keys[::-1]
        if after is not None:
            if after not in keys:
                raise ApiError(400, f"invalid pagination_key {after}")
            keys = keys[keys.index(after) + 1 :]
        page, more = keys[:limit], len(keys) > limit
        return page, (page[-1] if more and page else None)

    def _v2(self, page: list[Any], key: str | None) -> Reply:
        return Reply(200, {"items": page, "has_more": key is not None, "pagination_key": key})

    def v2_list(self, q: Request, store: dict[str, Any], id_field: str, default: int = 1000) -> Reply:
        if not self.v2_enabled:
            raise ApiError(404, "Not Found")
        ids, key = self._page(q, sorted(store), default)
        return self._v2([copy.deepcopy(store[i]) for i in ids], key)

    def legacy_list(self, q: Request, store: dict[str, Any], id_field: str) -> Reply:
        ids, _key = self._page(q, sorted(store), 1000)
        return Reply(200, [copy.deepcopy(store[i]) for i in ids])

    def v2_list_agents(self, q: Request) -> Reply:
        if not self.v2_enabled:
            raise ApiError(404, "Not Found")
        ids, key = self._page(q, sorted(self.agents), 1000)
        items = []
        for i in ids:
            a = self.latest(i)
            items.append(
                {
                    "agent_id": i,
                    "agent_name": a.get("agent_name"),
                    "channel": a.get("channel", "voice"),
                    "tags": a.get("tags", []),
                    "user_modified_timestamp": a["last_modification_timestamp"],
                }
            )
        return self._v2(items, key)

    def legacy_list_agents(self, q: Request) -> Reply:
        limit = int(q.query.get("limit", 1000))
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000")
        limit = min(limit, self.max_page)
        rows = [(aid, v["version"]) for aid in sorted(self.agents) for v in self.agents[aid]]
        key, kv = q.query.get("pagination_key"), q.query.get("pagination_key_version")
        if key is not None:
            rows = [r for r in rows if (r[0] > key if kv is None else r > (key, int(kv)))]
        if q.query.get("is_latest") == "true":
            rows = [r for r in rows if r[1] == self.latest(r[0])["version"]]
        return Reply(200, [copy.deepcopy(self.agents[a][v]) for a, v in rows[:limit]])

    # generic objects
    def get(self, store: dict[str, Any], key: str, what: str) -> Reply:
        if key not in store:
            raise ApiError(404, f"{what} {key} not found")
        return Reply(200, copy.deepcopy(store[key]))

    def _check_body(self, body: Any, readonly: set[str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        bad = sorted(set(body) & readonly)
        if bad:
            raise ApiError(400, f"read-only fields in body: {', '.join(bad)}")
        return body

    def create(self, q: Request, store: dict[str, Any], id_field: str, prefix: str, ro: set[str]) -> Reply:
        body = self._check_body(q.body, ro)
        new_id = prefix + secrets.token_hex(12)
        obj = {
            **copy.deepcopy(body),
            id_field: new_id,
            "version": 0,
            "is_published": False,
            "last_modification_timestamp": _now_ms(),
        }
        store[new_id] = obj
        return Reply(201, copy.deepcopy(obj))

    def update(self, q: Request, store: dict[str, Any], key: str, ro: set[str], what: str) -> Reply:
        if key not in store:
            raise ApiError(404, f"{what} {key} not found")
        body = self._check_body(q.body, ro)
        store[key].update(copy.deepcopy(body))
        store[key]["last_modification_timestamp"] = _now_ms()
        return Reply(200, copy.deepcopy(store[key]))

    # agents
    def _check_engine(self, body: dict[str, Any]) -> None:
        engine = body.get("response_engine")
        if engine is None:
            return
        if engine.get("type") == "retell-llm" and engine.get("llm_id") not in self.llms:
            raise ApiError(400, f"response_engine.llm_id {engine.get('llm_id')} not found")
        flow = engine.get("conversation_flow_id")
        if engine.get("type") == "conversation-flow" and flow not in self.flows:
            raise ApiError(400, f"response_engine.conversation_flow_id {flow} not found")

    def get_agent(self, q: Request, agent_id: str) -> Reply:
        if agent_id not in self.agents:
            raise ApiError(404, f"agent {agent_id} not found")
        versions = self.agents[agent_id]
        if "version" in q.query:
            match = [v for v in versions if v["version"] == int(q.query["version"])]
            if not match:
                raise ApiError(404, f"agent {agent_id} version {q.query['version']} not found")
            return Reply(200, copy.deepcopy(match[0]))
        return Reply(200, copy.deepcopy(versions[-1]))

    def create_agent(self, q: Request) -> Reply:
        body = self._check_body(q.body, AGENT_RO)
        if "response_engine" not in body:
            raise ApiError(400, "response_engine is required")
        self._check_engine(body)
        agent = self.add_agent(**copy.deepcopy(body))
        agent["is_published"] = False
        return Reply(201, copy.deepcopy(agent))

    def update_agent(self, q: Request, agent_id: str) -> Reply:
        if agent_id not in self.agents:
            raise ApiError(404, f"agent {agent_id} not found")
        body = self._check_body(q.body, AGENT_RO)
        self._check_engine(body)
        latest = self.latest(agent_id)
        latest.update(copy.deepcopy(body))
        latest["last_modification_timestamp"] = _now_ms()
        return Reply(200, copy.deepcopy(latest))

    def get_agent_versions(self, q: Request, agent_id: str) -> Reply:
        if agent_id not in self.agents:
            raise ApiError(404, f"agent {agent_id} not found")
        return Reply(200, copy.deepcopy(self.agents[agent_id]))

    def publish_agent_version(self, q: Request, agent_id: str) -> Reply:
        if agent_id not in self.agents:
            raise ApiError(404, f"agent {agent_id} not found")
        for v in self.agents[agent_id]:
            if v["version"] == (q.body or {}).get("version"):
                v["is_published"] = True
                return Reply(200, None)
        raise ApiError(400, "no such version")

    # phone numbers
    def update_phone(self, q: Request, number: str) -> Reply:
        if number not in self.phones:
            raise ApiError(404, f"phone number {number} not found")
        body = self._check_body(q.body, PHONE_RO)
        for list_field in ("inbound_agents", "outbound_agents"):
            items = body.get(list_field) or []
            for item in items:
                if item["agent_id"] not in self.agents:
                    raise ApiError(400, f"{list_field}: agent {item['agent_id']} not found")
            if items and abs(sum(i.get("weight", 0) for i in items) - 1) > 1e-9:
                raise ApiError(400, f"{list_field}: weights must sum to 1")
        self.phones[number].update(copy.deepcopy(body))
        self.phones[number]["last_modification_timestamp"] = _now_ms()
        return Reply(200, copy.deepcopy(self.phones[number]))
