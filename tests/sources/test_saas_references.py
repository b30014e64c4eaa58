"""Drills resolve the references between the objects of a SaaS export (Retell agents -> LLMs and flows,
phone numbers -> agents and their versions, LLM states, flow nodes; Cal.com event types -> schedules, team
objects -> teams, webhooks -> event types) and report the dangling ones. The export is untrusted: objects of
the wrong shape, hostile ids and names never crash the drill, and nothing of them is shown raw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safehold.sources.base import Sandbox, SourceContext
from safehold.sources.saas import refs
from safehold.sources.saas.common import file_name
from tests.fakes.saas_server import FakeClock
from tests.sources import test_saas_calcom as calcom
from tests.sources import test_saas_retell as retell
from tests.sources.memcomponent import MemoryComponent

fake_retell = retell.fake
fake_calcom = calcom.fake
clock = retell.clock


def _drop(out: MemoryComponent, kind: str, ident: str) -> None:
    """Remove one object from the export and from its index (the export stays self-consistent)."""
    index = json.loads(out.files["index.json"])
    folder, _, key = ident.rpartition("/")
    del out.files[f"{folder or kind}/{file_name(key)}"]
    index["ids"][kind].remove(ident)
    index["counts"][kind] -= 1
    out.files["index.json"] = json.dumps(index).encode()


class _Reader(MemoryComponent):
    """The export as the engine's reader gives it: listing a file raises NotADirectoryError."""

    def __init__(self, out: MemoryComponent) -> None:
        super().__init__()
        self.files = out.files

    def listdir(self, path: str = "") -> list[str]:
        if path in self.files:
            raise NotADirectoryError(path)
        return super().listdir(path)


def _verify(source: Any, out: MemoryComponent, tmp_path: Path) -> Any:
    return source.verify(_Reader(out), Sandbox(root=tmp_path), SourceContext())


def test_retell_references_resolve_and_dangle(fake_retell: Any, tmp_path: Path, clock: FakeClock) -> None:
    server, _app, seeded = fake_retell
    source = retell.make_source(tmp_path, server.url, clock, include_versions=True)
    out, _meta = retell.export(source)
    report = _verify(source, out, tmp_path)
    assert report.ok, report.summary
    (check,) = [c for c in report.checks if c.check == "references"]
    # 5 agents -> llm/flow, 5 phone -> agent links and their 5 versions, 1 starting state
    assert check.message.startswith("16 reference(s) resolved (1 voice id(s) (retell-Cimo) name Retell's"), (
        check
    )
    llm = seeded["llms"][1]["llm_id"]
    _drop(out, "llms", llm)
    _drop(out, "agents", seeded["agents"][0]["agent_id"])
    report = _verify(source, out, tmp_path)
    assert not report.ok
    (bad,) = [c for c in report.checks if not c.ok]
    assert bad.check == "references" and bad.message.startswith("3 dangling reference(s): ")
    assert any(f"-> llm {llm}: not in the export" in x for x in bad.lines), bad.lines
    a0 = seeded["agents"][0]["agent_id"]
    assert f"phone number +14157774444 -> agent {a0}: not in the export" in bad.lines
    assert "export is incomplete" in (bad.hint or "")


def test_calcom_references_resolve_and_dangle(fake_calcom: Any, tmp_path: Path, clock: FakeClock) -> None:
    server, _app, seeded = fake_calcom
    source = calcom.make_source(tmp_path, server.url, clock)
    out, _meta = calcom.export(source)
    report = _verify(source, out, tmp_path)
    assert report.ok, report.summary
    (check,) = [c for c in report.checks if c.check == "references"]
    # 2 event types -> schedules; 6 team objects -> their team (folder) and the teamId they name
    assert check.message == "14 reference(s) resolved", check
    office = seeded["schedules"][0]["id"]
    _drop(out, "schedules", f"schedules/{office}")
    report = _verify(source, out, tmp_path)
    (bad,) = [c for c in report.checks if not c.ok]
    assert bad.lines == [
        f"event type {seeded['event_types'][0]['id']} (consultation) -> schedule {office}: not in the export"
    ]


def test_hostile_objects_never_crash_and_are_shown_safely() -> None:
    objects: dict[str, Any] = {
        "agents/a.json": {
            "agent_id": "a",
            "agent_name": "x\n\x1b[31mred",
            "response_engine": {"llm_id": {"$ne": 1}},
            "voice_id": ["v"],
        },
        "agents/b.json": ["not", "an", "object"],
        "agents/c.json": {"agent_id": "c", "response_engine": "retell-llm"},
        "llms/l.json": {"llm_id": "l", "states": "none", "starting_state": "../../etc", "general_tools": 5},
        "llms/m.json": {
            "llm_id": "m",
            "states": [{"name": "s", "edges": [{"destination_state_name": "t"}, 7]}],
        },
        "conversation-flows/f.json": {
            "conversation_flow_id": "f",
            "nodes": [{"id": "n", "edges": None}, "x"],
        },
        "phone-numbers/p.json": {
            "phone_number": "+1\r\n555",
            "inbound_agents": [{"agent_id": "c", "agent_version": 1}, None, {"agent_id": True}],
            "outbound_agents": {"agent_id": "a"},
            "inbound_agent_id": "zz" * 200,
        },
        "agent-versions/c.json": [{"agent_id": "c", "version": 0}, "junk"],
    }
    r = refs.retell(objects)
    assert r.resolved == 1  # the phone's link to agent c
    assert all(line.isprintable() and len(line) < 400 for line in r.dangling), r.dangling
    assert any("agent 'x\\n\\x1b[31mred'" in line or "'x\\n\\x1b[31mred'" in line for line in r.dangling), (
        r.dangling
    )
    assert any("starting state ../../etc is not one of its states" in line for line in r.dangling)
    assert any("leads to t, not one of its states" in line for line in r.dangling)
    assert any("version 1: not among its exported versions" in line for line in r.dangling)
    cal = refs.calcom(
        {
            "event-types/1.json": {"id": 1, "scheduleId": [1]},
            "teams/9/memberships/3.json": {"id": 3, "teamId": 9},
            "teams/../memberships/4.json": {"id": 4},
            "webhooks/w.json": {"id": "w", "eventTypeId": 2},
            "schedules/x.json": "junk",
        }
    )
    assert cal.resolved == 0 and len(cal.dangling) == 4, cal.dangling
