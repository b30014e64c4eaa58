"""The fake Retell and Cal.com accounts of the e2e server: destroy them, and compare them modulo new ids.

A restore re-creates deleted LLMs, flows, agents, schedules and event types with *new* ids and rewrites
the references to them; phone numbers, teams, memberships and webhooks cannot be re-created through the
documented APIs, so the e2e test deletes only what can come back and changes the rest. The canonical
forms below replace every id by the content it names, so equal canonical forms mean equal accounts.
"""

from __future__ import annotations

import json
from typing import Any

from safehold.sources.saas.retell.restore import AGENT_READONLY, FLOW_READONLY, LLM_READONLY, PHONE_READONLY
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell


def _strip(obj: dict[str, Any], ro: frozenset[str] | set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ro}


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def retell_canonical(app: FakeRetell) -> dict[str, Any]:
    """LLMs, flows and agents as sorted content lists (ids replaced by the content they name);
    phone numbers by number, routed to agents by name."""
    llms = {k: _strip(v, LLM_READONLY) for k, v in app.llms.items()}
    flows = {k: _strip(v, FLOW_READONLY) for k, v in app.flows.items()}
    agents: dict[str, dict[str, Any]] = {}
    for agent_id, versions in app.agents.items():
        a = _strip(versions[-1], AGENT_READONLY)
        eng = {k: v for k, v in a["response_engine"].items() if k != "version"}
        if "llm_id" in eng:
            eng["llm_id"] = llms.get(eng["llm_id"], f"<dangling {eng['llm_id']}>")
        if "conversation_flow_id" in eng:
            fid = eng["conversation_flow_id"]
            eng["conversation_flow_id"] = flows.get(fid, f"<dangling {fid}>")
        a["response_engine"] = eng
        agents[agent_id] = a
    phones = {}
    for number, p in app.phones.items():
        phone = _strip(p, PHONE_READONLY)
        for f in ("inbound_agents", "outbound_agents"):
            if f in phone:
                phone[f] = [
                    {
                        "agent": agents.get(i["agent_id"], {}).get(
                            "agent_name", f"<dangling {i['agent_id']}>"
                        ),
                        "weight": i["weight"],
                    }
                    for i in phone[f]
                ]
        phones[number] = phone
    return {
        "llms": sorted(_key(v) for v in llms.values()),
        "flows": sorted(_key(v) for v in flows.values()),
        "agents": sorted(_key(v) for v in agents.values()),
        "phones": phones,
    }


def destroy_retell(app: FakeRetell) -> None:
    """Delete every LLM, flow and agent (phone numbers stay: they cannot be re-created; their routes
    now point at agents that no longer exist) and change a phone number's nickname."""
    with app.lock:
        app.llms.clear()
        app.flows.clear()
        app.agents.clear()
        first = next(iter(app.phones.values()))
        first["nickname"] = "changed after the disaster"


def calcom_canonical(app: FakeCalcom) -> dict[str, Any]:
    """Schedules and event types as sorted content (``scheduleId`` replaced by the schedule's name);
    teams, team event types, memberships and webhooks as they are (they are never re-created)."""
    schedules = {k: _strip(v, {"id", "ownerId"}) for k, v in app.schedules.items()}
    ets = []
    for e in app.event_types.values():
        e2 = _strip(e, {"id", "ownerId"})
        if e2.get("scheduleId") is not None:
            e2["scheduleId"] = schedules.get(e2["scheduleId"], {}).get(
                "name", f"<dangling {e2['scheduleId']}>"
            )
        ets.append(_key(e2))
    return {
        "schedules": sorted(_key(v) for v in schedules.values()),
        "event_types": sorted(ets),
        "teams": _key(app.teams),
        "team_event_types": _key(app.team_event_types),
        "memberships": _key(app.memberships),
        "webhooks": _key(app.webhooks),
    }


def destroy_calcom(app: FakeCalcom) -> None:
    """Delete every schedule and event type; rename the team and deactivate a webhook."""
    with app.lock:
        app.schedules.clear()
        app.event_types.clear()
        next(iter(app.teams.values()))["name"] = "changed after the disaster"
        next(iter(app.webhooks.values()))["active"] = False
