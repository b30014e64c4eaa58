"""Seed data and helpers for the SaaS source tests: a realistic account in each fake service."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell


def seed_retell(app: FakeRetell) -> dict[str, Any]:
    """Two LLMs, one conversation flow, five agents (one with three versions), three numbers (one SIP)."""
    llm_a = app.add_llm(
        model="gpt-4.1",
        model_temperature=0,
        begin_message="Hello",
        general_prompt="You are the front desk.",
        general_tools=[{"type": "end_call", "name": "end_call", "description": "End the call."}],
        states=[{"name": "collect", "state_prompt": "Ask for the name.", "edges": [], "tools": []}],
        starting_state="collect",
        default_dynamic_variables={"customer_name": "John Doe"},
    )
    llm_b = app.add_llm(model="gpt-4.1-mini", general_prompt="You book appointments.", general_tools=[])
    flow = app.add_flow(
        global_prompt="Flow agent.", nodes=[{"id": "start", "type": "conversation"}], start_speaker="agent"
    )
    agents = []
    for i, (llm, versions) in enumerate([(llm_a, 3), (llm_a, 1), (llm_b, 1), (llm_b, 1)]):
        agents.append(
            app.add_agent(
                versions=versions,
                agent_name=f"Agent {i}",
                response_engine={"type": "retell-llm", "llm_id": llm["llm_id"], "version": 0},
                voice_id="retell-Cimo",
                language="en-US",
                webhook_url="https://example.invalid/hook",
                max_call_duration_ms=3600000,
            )
        )
    agents.append(
        app.add_agent(
            agent_name="Flow agent",
            response_engine={
                "type": "conversation-flow",
                "conversation_flow_id": flow["conversation_flow_id"],
                "version": 0,
            },
            voice_id="retell-Cimo",
        )
    )
    a0, a1 = agents[0]["agent_id"], agents[1]["agent_id"]
    phones = [
        app.add_phone(
            "+14157774444",
            nickname="Frontdesk",
            inbound_agents=[{"agent_id": a0, "agent_version": 2, "weight": 1}],
            outbound_agents=[{"agent_id": a1, "agent_version": 0, "weight": 1}],
            inbound_webhook_url="https://example.invalid/inbound",
            allowed_inbound_country_list=["US", "CA"],
        ),
        app.add_phone(
            "+14157775555",
            nickname="Sales",
            inbound_agents=[
                {"agent_id": a1, "agent_version": 0, "weight": 0.5},
                {"agent_id": agents[2]["agent_id"], "agent_version": 0, "weight": 0.5},
            ],
        ),
        app.add_phone(
            "+4930123456",
            phone_number_type="custom",
            nickname="SIP trunk",
            sip_outbound_trunk_config={"termination_uri": "sip.example.invalid", "auth_username": "u"},
            inbound_agents=[{"agent_id": agents[3]["agent_id"], "agent_version": 0, "weight": 1}],
        ),
    ]
    return {"llms": [llm_a, llm_b], "flow": flow, "agents": agents, "phones": phones}


def seed_calcom(app: FakeCalcom, members: int = 5, hooks: int = 3) -> dict[str, Any]:
    """Two schedules, three event types (one seated, one recurring), a team with an event type and
    ``members`` memberships, ``hooks`` webhooks."""
    office = app.add_schedule(
        name="Office hours",
        timeZone="Europe/Berlin",
        availability=[{"days": ["Monday", "Tuesday"], "startTime": "09:00", "endTime": "17:00"}],
        isDefault=True,
        overrides=[{"date": "2024-05-20", "startTime": "18:00", "endTime": "21:00"}],
    )
    evening = app.add_schedule(
        name="Evenings",
        timeZone="Europe/Berlin",
        availability=[{"days": ["Friday"], "startTime": "18:00", "endTime": "20:00"}],
    )
    ets = [
        app.add_event_type(
            title="Consultation",
            slug="consultation",
            description="First talk",
            lengthInMinutes=60,
            scheduleId=office["id"],
            bookingFields=[{"type": "name", "slug": "name", "required": True}],
        ),
        app.add_event_type(title="Workshop", slug="workshop", seatsPerTimeSlot=10, scheduleId=evening["id"]),
        app.add_event_type(
            title="Weekly", slug="weekly", recurrence={"interval": 1, "occurrences": 4, "frequency": "weekly"}
        ),
    ]
    team = app.add_team(name="Sales", slug="sales", timeZone="Europe/Berlin", weekStart="Monday")
    tet = app.add_team_event_type(team["id"], title="Demo", slug="demo")
    ms = [app.add_membership(team["id"], 20 + i) for i in range(members)]
    wh = [
        app.add_webhook(
            subscriberUrl=f"https://example.invalid/hook{i}", payloadTemplate=None, secret=f"s{i}"
        )
        for i in range(hooks)
    ]
    return {
        "schedules": [office, evening],
        "event_types": ets,
        "team": team,
        "team_et": tet,
        "members": ms,
        "hooks": wh,
    }


def decode(files: dict[str, bytes]) -> dict[str, Any]:
    return {p: json.loads(b) for p, b in files.items()}


def snapshot_state(app: Any) -> Any:
    """A deep copy of a fake's whole state (to prove a dry run changed nothing)."""
    names = (
        ["agents", "llms", "flows", "phones"]
        if isinstance(app, FakeRetell)
        else [
            "event_types",
            "schedules",
            "teams",
            "team_event_types",
            "memberships",
            "webhooks",
        ]
    )
    return {n: copy.deepcopy(getattr(app, n)) for n in names}
