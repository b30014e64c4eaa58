"""Restore of a ``saas/retell`` export: plan, then apply in dependency order with id remapping.

Order: LLMs and conversation flows, then agents, then phone numbers. Before comparing or sending, the
fields Retell treats as read-only are stripped (agent: ``agent_id``, ``version``, ``is_published``,
``last_modification_timestamp``, ``base_version``, ``assigned_tags``; LLM and flow: their id,
``version``, ``is_published``, ``last_modification_timestamp``; phone number: ``phone_number``,
``phone_number_type``, ``phone_number_pretty``, ``area_code``, ``last_modification_timestamp``,
``sip_outbound_trunk_config``).

* An LLM, flow or agent that no longer exists is re-created (``POST /create-retell-llm``,
  ``/create-conversation-flow``, ``/create-agent``) and gets a new id; agents' ``response_engine`` and
  phone numbers' ``inbound_agents`` / ``outbound_agents`` (and the older ``inbound_agent_id`` /
  ``outbound_agent_id``) are remapped to it, with the re-created object's version.
* Before re-creating, the live objects of that kind are searched for one with the same content that is
  not itself in the export: the copy an earlier (perhaps interrupted) restore made. It is adopted, so a
  restore can be run again without duplicating LLMs, flows or agents.
* A phone number that no longer exists cannot be re-created (that is buying or importing a number):
  it is reported as ``missing``.
* Write-only values cannot be restored: a SIP trunk's ``auth_password`` is never returned by the API, and
  ``sip_outbound_trunk_config`` is read-only on update; each affected number is named in the warnings.
* Agents are updated on their latest draft; version history (``agent-versions/``) is kept for reference
  and not replayed; a re-created agent starts unpublished.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from safehold.sources.component import ComponentReader
from safehold.sources.saas.common import (
    IdMap,
    Obj,
    ObjectKind,
    PlanEntry,
    read_objects,
)
from safehold.sources.saas.http import ApiClient, segment
from safehold.sources.saas.retell.client import Exporter

AGENT_READONLY = frozenset(
    {"agent_id", "version", "is_published", "last_modification_timestamp", "base_version", "assigned_tags"}
)
LLM_READONLY = frozenset({"llm_id", "version", "is_published", "last_modification_timestamp"})
FLOW_READONLY = frozenset({"conversation_flow_id", "version", "is_published", "last_modification_timestamp"})
PHONE_READONLY = frozenset(
    {
        "phone_number",
        "phone_number_type",
        "phone_number_pretty",
        "area_code",
        "last_modification_timestamp",
        "sip_outbound_trunk_config",
    }
)
FOLDERS = ("llms", "conversation-flows", "agents", "phone-numbers")


def saved(snap: ComponentReader) -> dict[str, list[tuple[str, Obj]]]:
    """The saved objects of each folder, in restore order."""
    return {folder: read_objects(snap, folder) for folder in FOLDERS}


def warnings(
    saved: dict[str, list[tuple[str, Obj]]], entries: list[PlanEntry], snap: ComponentReader
) -> list[str]:
    """Re-created agents that were published start as drafts; version history is not replayed."""
    out = []
    recreated_agents = {e.key for e in entries if e.kind == "agent" and e.action == "create"}
    for _path, agent in saved["agents"]:
        if str(agent.get("agent_id")) in recreated_agents and agent.get("is_published"):
            out.append(
                f"agent {agent.get('agent_id')} was published; its re-created copy is an unpublished draft"
                " (publish it once checked)"
            )
    if snap.exists("agent-versions") and snap.listdir("agent-versions"):
        out.append(
            "agent version history (agent-versions/) is kept for reference; only each agent's latest "
            "configuration is restored"
        )
    return out


def object_kinds(api: ApiClient, lister: Exporter) -> list[ObjectKind]:
    """LLMs and flows, then agents, then phone numbers, with their API calls and id remapping."""

    def getter(path: str) -> Any:
        return lambda key: api.request("GET", f"/{path}/{segment(key)}", allow_404=True)

    def updater(path: str) -> Any:
        return lambda key, body: api.request("PATCH", f"/{path}/{segment(key)}", json=body)

    def creator(path: str) -> Any:
        return lambda body: api.request("POST", f"/{path}", json=body)

    def fetch_all(path: str, keys: Callable[[], Iterable[str]]) -> Callable[[], list[Obj]]:
        def run() -> list[Obj]:
            found = [api.request("GET", f"/{path}/{segment(k)}", allow_404=True) for k in keys()]
            return [obj for obj in found if isinstance(obj, dict)]

        return run

    return [
        ObjectKind(
            kind="llm",
            folder="llms",
            key_of=lambda o: str(o.get("llm_id")),
            readonly=LLM_READONLY,
            get=getter("get-retell-llm"),
            update=updater("update-retell-llm"),
            create=creator("create-retell-llm"),
            candidates=fetch_all("get-retell-llm", lambda: lister.list_ids("list-retell-llms", "llm_id")),
        ),
        ObjectKind(
            kind="conversation-flow",
            folder="conversation-flows",
            key_of=lambda o: str(o.get("conversation_flow_id")),
            readonly=FLOW_READONLY,
            get=getter("get-conversation-flow"),
            update=updater("update-conversation-flow"),
            create=creator("create-conversation-flow"),
            candidates=fetch_all("get-conversation-flow", lister.flow_ids),
        ),
        ObjectKind(
            kind="agent",
            folder="agents",
            key_of=lambda o: str(o.get("agent_id")),
            readonly=AGENT_READONLY,
            get=getter("get-agent"),
            update=updater("update-agent"),
            create=creator("create-agent"),
            candidates=fetch_all("get-agent", lister.agent_ids),
            remap=_remap_agent,
            label_of=lambda o: str(o.get("agent_name") or ""),
        ),
        ObjectKind(
            kind="phone-number",
            folder="phone-numbers",
            key_of=lambda o: str(o.get("phone_number")),
            readonly=PHONE_READONLY,
            get=getter("get-phone-number"),
            update=updater("update-phone-number"),
            remap=_remap_phone,
            label_of=lambda o: str(o.get("nickname") or ""),
            missing_note=(
                "a restore does not buy or import numbers: add the number to the account, then restore again"
            ),
        ),
    ]


def _remap_agent(agent: Obj, ids: IdMap) -> Obj:
    out = copy.deepcopy(agent)
    engine = out.get("response_engine")
    if not isinstance(engine, dict):
        return out
    for field, kind in (("llm_id", "llm"), ("conversation_flow_id", "conversation-flow")):
        if engine.get(field):
            recreated, version = ids.version(kind, engine[field])
            engine[field] = ids.get(kind, engine[field])
            if recreated and version is not None:
                engine["version"] = version
    return out


def _remap_phone(phone: Obj, ids: IdMap) -> Obj:
    out = copy.deepcopy(phone)
    for list_field in ("inbound_agents", "outbound_agents"):
        for item in out.get(list_field) or []:
            if isinstance(item, dict) and item.get("agent_id"):
                recreated, version = ids.version("agent", item["agent_id"])
                item["agent_id"] = ids.get("agent", item["agent_id"])
                if recreated and version is not None and "agent_version" in item:
                    item["agent_version"] = version
    for direction in ("inbound", "outbound"):
        old = out.get(f"{direction}_agent_id")
        if old:
            recreated, version = ids.version("agent", old)
            out[f"{direction}_agent_id"] = ids.get("agent", old)
            if recreated and version is not None and f"{direction}_agent_version" in out:
                out[f"{direction}_agent_version"] = version
    return out


def write_only(phones: list[tuple[str, Obj]]) -> list[dict[str, str]]:
    """Phone numbers whose SIP settings hold a write-only password that no export can contain."""
    out = []
    for _path, phone in phones:
        kind = str(phone.get("phone_number_type") or "")
        if phone.get("sip_outbound_trunk_config") or "custom" in kind or "sip" in kind.lower():
            number = str(phone.get("phone_number"))
            out.append(
                {
                    "object": f"phone-number {number}",
                    "field": "sip_outbound_trunk_config.auth_password",
                    "message": (
                        f"phone-number {number}: the SIP auth_password is write-only and cannot be backed "
                        "up, and sip_outbound_trunk_config is read-only on update: set the SIP trunk "
                        "settings again by hand"
                    ),
                }
            )
    return out
