"""References between the objects of a SaaS export, resolved offline (drills make no API call): every id
one object names must be an object of the same export, so that a restore can re-create it and remap the
reference. The export is untrusted: objects of the wrong shape are skipped, ids are compared as text.

Each kind has one function ``(objects) -> References``; ``objects`` maps a stored path (``agents/x.json``)
to its parsed JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from safehold.sources.saas.common import file_name

Objects = dict[str, Any]


@dataclass
class References:
    """How many references resolved, which did not (one line each), and what cannot be resolved offline."""

    resolved: int = 0
    dangling: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def need(self, ok: bool, line: str) -> None:
        if ok:
            self.resolved += 1
        else:
            self.dangling.append(line)


def ident(value: Any) -> str | None:
    """An id as text (ids are strings or integers), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def of_folder(objects: Objects, folder: str) -> Iterator[dict[str, Any]]:
    """The objects stored directly in ``folder`` (JSON objects only)."""
    for path in sorted(objects):
        head, _, _name = path.rpartition("/")
        if head == folder and isinstance(objects[path], dict):
            yield objects[path]


def items(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of a list (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def show(value: Any) -> str:
    """A value for a message: printable, bounded."""
    text = str(value)
    return (text if text.isprintable() else repr(text))[:80]


def retell(objects: Objects) -> References:
    """Agents -> their LLM or conversation flow; phone numbers -> agents (and the agent version, when the
    versions were exported); an LLM's starting state and edges -> its states; a flow's start node and
    edges -> its nodes. Voice ids name Retell's voice catalogue, which is not exported: counted only."""
    refs = References()
    llms = {ident(o.get("llm_id")) for o in of_folder(objects, "llms")}
    flows = {ident(o.get("conversation_flow_id")) for o in of_folder(objects, "conversation-flows")}
    agents = {ident(o.get("agent_id")): o for o in of_folder(objects, "agents")}
    versions: dict[str, set[str]] = {}
    for path, doc in objects.items():
        if path.startswith("agent-versions/") and isinstance(doc, list):
            for v in doc:
                if isinstance(v, dict) and ident(v.get("agent_id")) is not None:
                    versions.setdefault(str(v["agent_id"]), set()).add(str(ident(v.get("version"))))
    voices: set[str] = set()
    for aid, agent in agents.items():
        who = f"agent {show(aid)} ({show(agent.get('agent_name'))})"
        engine = agent.get("response_engine")
        if isinstance(engine, dict):
            if engine.get("llm_id") is not None:
                llm_id = ident(engine.get("llm_id"))
                refs.need(llm_id in llms, f"{who} -> llm {show(engine.get('llm_id'))}: not in the export")
            if engine.get("conversation_flow_id") is not None:
                flow_id = ident(engine.get("conversation_flow_id"))
                refs.need(
                    flow_id in flows,
                    f"{who} -> conversation flow {show(engine.get('conversation_flow_id'))}: not in the export",
                )
        if ident(agent.get("voice_id")) is not None:
            voices.add(str(agent["voice_id"]))
    for phone in of_folder(objects, "phone-numbers"):
        who = f"phone number {show(phone.get('phone_number'))}"
        named = [
            (i.get("agent_id"), i.get("agent_version"))
            for f in ("inbound_agents", "outbound_agents")
            for i in items(phone.get(f))
        ]
        named += [(phone.get(f), None) for f in ("inbound_agent_id", "outbound_agent_id") if phone.get(f)]
        for aid, version in named:
            key = ident(aid)
            refs.need(key in agents, f"{who} -> agent {show(aid)}: not in the export")
            if key in agents and key in versions and version is not None:
                refs.need(
                    str(ident(version)) in versions[key],
                    f"{who} -> agent {show(aid)} version {show(version)}: not among its exported versions",
                )
    for llm in of_folder(objects, "llms"):
        _graph(
            refs,
            f"llm {show(llm.get('llm_id'))}",
            items(llm.get("states")),
            llm.get("starting_state"),
            member="name",
            dest="destination_state_name",
            start="starting state",
            noun="state",
        )
    for flow in of_folder(objects, "conversation-flows"):
        _graph(
            refs,
            f"conversation flow {show(flow.get('conversation_flow_id'))}",
            items(flow.get("nodes")),
            flow.get("start_node_id"),
            member="id",
            dest="destination_node_id",
            start="start node",
            noun="node",
        )
    if voices:
        refs.notes.append(
            f"{len(voices)} voice id(s) ({', '.join(sorted(map(show, voices))[:3])}) name Retell's catalogue, not exported"
        )
    return refs


def calcom(objects: Objects) -> References:
    """Event types -> their schedule; team event types and memberships -> their team; webhooks -> their
    event type."""
    refs = References()
    schedules = {ident(o.get("id")) for o in of_folder(objects, "schedules")}
    event_types = {ident(o.get("id")) for o in of_folder(objects, "event-types")}
    teams = {ident(o.get("id")) for o in of_folder(objects, "teams")}
    for et in of_folder(objects, "event-types"):
        if et.get("scheduleId") is not None:
            refs.need(
                ident(et["scheduleId"]) in schedules,
                f"event type {show(et.get('id'))} ({show(et.get('slug'))}) -> schedule {show(et['scheduleId'])}: not in the export",
            )
    for path in sorted(objects):
        parts = path.split("/")
        obj = objects[path]
        if (
            len(parts) != 4
            or parts[0] != "teams"
            or parts[2] not in ("event-types", "memberships")
            or not isinstance(obj, dict)
        ):
            continue
        folder_team = next(
            (t for t in teams if t is not None and file_name(t)[: -len(".json")] == parts[1]), None
        )
        what = "team event type" if parts[2] == "event-types" else "membership"
        refs.need(
            folder_team is not None,
            f"{what} {show(obj.get('id'))} -> team {show(parts[1])}: not in the export",
        )
        if obj.get("teamId") is not None and folder_team is not None:
            refs.need(
                ident(obj["teamId"]) == folder_team,
                f"{what} {show(obj.get('id'))} is stored under team {show(parts[1])} but names team {show(obj['teamId'])}",
            )
    for hook in of_folder(objects, "webhooks"):
        if hook.get("eventTypeId") is not None:
            refs.need(
                ident(hook["eventTypeId"]) in event_types,
                f"webhook {show(hook.get('id'))} -> event type {show(hook['eventTypeId'])}: not in the export",
            )
    return refs


def _graph(
    refs: References,
    who: str,
    members: list[dict[str, Any]],
    first: Any,
    *,
    member: str,
    dest: str,
    start: str,
    noun: str,
) -> None:
    """One graph of a Retell LLM (states) or conversation flow (nodes): its start and every edge lead to a member."""
    names = {ident(m.get(member)) for m in members}
    if first is not None:
        refs.need(ident(first) in names, f"{who}: {start} {show(first)} is not one of its {noun}s")
    for m in members:
        for e in items(m.get("edges")):
            if e.get(dest) is not None:
                refs.need(
                    ident(e[dest]) in names,
                    f"{who}: an edge of {noun} {show(m.get(member))} leads to {show(e[dest])}, not one of its {noun}s",
                )
