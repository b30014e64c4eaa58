"""saas/retell against the local fake Retell server: export, pagination, plan, apply, failures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.registry import source_class
from safehold.sources.saas.retell import RetellSource
from safehold.sources.saas.retell.restore import AGENT_READONLY, FLOW_READONLY, LLM_READONLY, PHONE_READONLY
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_retell, snapshot_state
from tests.fakes.saas_server import FakeClock, FakeSaasServer
from tests.sources.memcomponent import MemoryComponent

KEY = "key_retell_0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock):
    app = FakeRetell(api_key=KEY, clock=clock, max_page=2)
    seeded = seed_retell(app)
    with FakeSaasServer(app) as server:
        yield server, app, seeded


def make_source(tmp_path: Path, url: str, clock: FakeClock, key: str = KEY, **opts: Any) -> RetellSource:
    keyfile = tmp_path / f"key-{abs(hash(key))}"
    keyfile.write_text(key + "\n")
    options = RetellSource.Options.model_validate(
        {"api_key": {"file": str(keyfile)}, "base_url": url, **opts}
    )
    return RetellSource("retell", options, clock=clock)


def export(source: RetellSource) -> tuple[MemoryComponent, dict[str, Any]]:
    out = MemoryComponent()
    meta = source.backup(out, SourceContext())
    return out, meta


def strip(obj: dict[str, Any], ro: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ro}


def normalized(state: dict[str, Any], id_map: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """The restorable content of a fake's state, with old ids mapped to new ones (versions dropped)."""
    m = id_map or {}
    llm, agent, flow = m.get("llm", {}), m.get("agent", {}), m.get("conversation-flow", {})

    def engine(e: dict[str, Any]) -> dict[str, Any]:
        e = {k: v for k, v in e.items() if k != "version"}
        if "llm_id" in e:
            e["llm_id"] = llm.get(e["llm_id"], e["llm_id"])
        if "conversation_flow_id" in e:
            e["conversation_flow_id"] = flow.get(e["conversation_flow_id"], e["conversation_flow_id"])
        return e

    def routes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"agent_id": agent.get(i["agent_id"], i["agent_id"]), "weight": i["weight"]} for i in items]

    out: dict[str, Any] = {
        "llms": {llm.get(k, k): strip(v, LLM_READONLY) for k, v in state["llms"].items()},
        "flows": {flow.get(k, k): strip(v, FLOW_READONLY) for k, v in state["flows"].items()},
        "agents": {},
        "phones": {},
    }
    for k, versions in state["agents"].items():
        latest = strip(versions[-1], AGENT_READONLY)
        latest["response_engine"] = engine(latest["response_engine"])
        out["agents"][agent.get(k, k)] = latest
    for k, v in state["phones"].items():
        phone = strip(v, PHONE_READONLY)
        for f in ("inbound_agents", "outbound_agents"):
            if f in phone:
                phone[f] = routes(phone[f])
        out["phones"][k] = phone
    return out


def test_registered_kind() -> None:
    assert source_class("saas/retell") is RetellSource
    assert RetellSource.kind == "saas/retell"
    for name, field in RetellSource.Options.model_fields.items():
        assert field.description, name
        assert field.examples, name


def test_export_layout_pagination_and_canonical_json(fake, tmp_path, clock) -> None:
    server, app, seeded = fake
    out, meta = export(make_source(tmp_path, server.url, clock))
    agents = [a["agent_id"] for a in seeded["agents"]]
    expected = {
        *(f"agents/{a}.json" for a in agents),
        *(f"agent-versions/{a}.json" for a in agents),
        *(f"llms/{x['llm_id']}.json" for x in seeded["llms"]),
        f"conversation-flows/{seeded['flow']['conversation_flow_id']}.json",
        "phone-numbers/+14157774444.json",
        "phone-numbers/+14157775555.json",
        "phone-numbers/+4930123456.json",
        "index.json",
    }
    assert set(out.files) == expected
    for path, data in out.files.items():
        obj = json.loads(data)
        assert data == (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(), path
    # the latest version of each agent, and all versions next to it
    a0 = agents[0]
    assert json.loads(out.files[f"agents/{a0}.json"]) == app.latest(a0)
    assert [v["version"] for v in json.loads(out.files[f"agent-versions/{a0}.json"])] == [0, 1, 2]
    # five agents at two per page: three list calls following pagination_key
    lists = [r for r in app.log if r.path == "/v2/list-agents"]
    assert [r.method for r in lists] == ["POST"] * 3
    assert [r.query.get("pagination_key") for r in lists] == [None, sorted(agents)[1], sorted(agents)[3]]
    # the E.164 key is percent-encoded in the URL
    assert any(r.raw_path == "/get-phone-number/%2B14157774444" for r in app.log)
    assert meta["counts"] == {"agents": 5, "llms": 2, "conversation-flows": 1, "phone-numbers": 3}
    assert meta["list_api"] == "v2"
    assert KEY not in json.dumps(meta)
    assert KEY not in "".join(out.lines)
    index = json.loads(out.files["index.json"])
    assert index["counts"] == meta["counts"]
    assert sorted(index["ids"]["agents"]) == sorted(agents)


def test_export_is_stable(fake, tmp_path, clock) -> None:
    server, _app, _seeded = fake
    source = make_source(tmp_path, server.url, clock)
    first, _ = export(source)
    second, _ = export(source)
    assert first.files == second.files


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_legacy_list_endpoints(fake, tmp_path, clock, mode) -> None:
    server, app, _seeded = fake
    modern, _ = export(make_source(tmp_path, server.url, clock))
    app.v2_enabled = mode != "auto"  # auto must fall back when v2 answers 404
    app.log.clear()
    old, meta = export(make_source(tmp_path, server.url, clock, list_api=mode))
    assert meta["list_api"] == "legacy"
    assert {p: b for p, b in old.files.items() if p != "index.json"} == {
        p: b for p, b in modern.files.items() if p != "index.json"
    }
    agent_lists = [r for r in app.log if r.path == "/list-agents"]
    # 7 agent versions at two per page, then an empty page
    assert len(agent_lists) == 5
    assert "pagination_key_version" in agent_lists[1].query
    assert not [r for r in app.log if r.path.startswith("/v2/") and r.path != "/v2/list-agents"]


def test_plan_apply_roundtrip(fake, tmp_path, clock) -> None:
    server, app, seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    original = snapshot_state(app)
    llm_a, llm_b = (x["llm_id"] for x in seeded["llms"])
    flow = seeded["flow"]["conversation_flow_id"]
    a = [x["agent_id"] for x in seeded["agents"]]

    # drift and disaster
    del app.llms[llm_b]  # used by agents 2 and 3
    del app.agents[a[2]]  # routed from +14157775555
    app.latest(a[0]).update(agent_name="Renamed", voice_id="retell-Other")
    app.llms[llm_a]["states"][0]["state_prompt"] = "changed"
    app.flows[flow]["global_prompt"] = "changed"
    app.phones["+14157774444"]["nickname"] = "changed"
    del app.phones["+14157774444"]["allowed_inbound_country_list"]

    expected = {
        ("llm", llm_a): ("update", ["states[0].state_prompt"]),
        ("llm", llm_b): ("create", []),
        ("conversation-flow", flow): ("update", ["global_prompt"]),
        ("agent", a[0]): ("update", ["agent_name", "voice_id"]),
        ("agent", a[1]): ("unchanged", []),
        ("agent", a[2]): ("create", []),
        ("agent", a[3]): ("update", ["response_engine.llm_id"]),
        ("agent", a[4]): ("unchanged", []),
        ("phone-number", "+14157774444"): ("update", ["allowed_inbound_country_list", "nickname"]),
        ("phone-number", "+14157775555"): ("update", ["inbound_agents[1].agent_id"]),
        ("phone-number", "+4930123456"): ("unchanged", []),
    }

    # dry run: the plan, and not one write
    drifted = snapshot_state(app)
    app.log.clear()
    plan = source.restore(snap, SourceContext(dry_run=True))
    got = {(e["kind"], e["key"]): (e["action"], e["fields"]) for e in plan.details["plan"]}
    assert got == expected
    assert [e["kind"] for e in plan.details["plan"]] == [k for k, _ in expected]  # dependency order
    assert snapshot_state(app) == drifted
    assert {r.path for r in app.log if r.method != "GET"} == {"/v2/list-agents"}  # a read despite POST
    assert plan.details["dry_run"] is True
    assert plan.details["counts"] == {"unchanged": 3, "update": 6, "create": 2, "missing": 0}
    assert any(
        line.startswith(f"agent {a[0]} (Agent 0): update agent_name, voice_id") for line in plan.actions
    )

    # apply
    report = source.restore(snap, SourceContext())
    id_map = report.details["id_map"]
    assert set(id_map["llm"]) == {llm_b} and set(id_map["agent"]) == {a[2]}
    assert id_map["llm"][llm_b] in app.llms and id_map["agent"][a[2]] in app.agents
    assert normalized(snapshot_state(app)) == normalized(original, id_map)
    new_agent = app.latest(id_map["agent"][a[2]])
    assert new_agent["response_engine"]["llm_id"] == id_map["llm"][llm_b]
    assert app.phones["+14157775555"]["inbound_agents"][1]["agent_id"] == id_map["agent"][a[2]]

    # a second restore finds the copies the first one made instead of duplicating them
    sizes = (len(app.llms), len(app.agents))
    again = source.restore(snap, SourceContext())
    assert again.details["counts"] == {"unchanged": 11, "update": 0, "create": 0, "missing": 0}
    assert again.details["id_map"] == id_map
    adopted = {e["key"]: e["new_key"] for e in again.details["plan"] if e["new_key"]}
    assert adopted == {llm_b: id_map["llm"][llm_b], a[2]: id_map["agent"][a[2]]}
    assert (len(app.llms), len(app.agents)) == sizes


def test_write_only_sip_password_reported(fake, tmp_path, clock) -> None:
    server, _app, _seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    report = source.restore(snap, SourceContext(dry_run=True))
    assert report.details["write_only"] == [
        {
            "object": "phone-number +4930123456",
            "field": "sip_outbound_trunk_config.auth_password",
            "message": report.details["write_only"][0]["message"],
        }
    ]
    assert any("+4930123456" in w and "auth_password" in w for w in report.warnings)
    assert not any("+14157774444" in w for w in report.warnings)


def test_missing_phone_number_is_reported_not_invented(fake, tmp_path, clock) -> None:
    server, app, _seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    del app.phones["+14157775555"]
    report = source.restore(snap, SourceContext())
    entry = next(e for e in report.details["plan"] if e["key"] == "+14157775555")
    assert entry["action"] == "missing"
    assert "+14157775555" not in app.phones
    assert any("+14157775555 is missing" in w for w in report.warnings)


def test_restore_into_another_account(fake, tmp_path, clock) -> None:
    server, _app, _seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    other_key = "key_other_account_987654"
    keyfile = tmp_path / "other-key"
    keyfile.write_text(other_key)
    target = FakeRetell(api_key=other_key, clock=clock)
    with FakeSaasServer(target) as other:
        options = {"base_url": other.url, "api_key": {"file": str(keyfile)}}
        report = source.restore(snap, SourceContext(options=options))
    counts = report.details["counts"]
    assert counts == {"unchanged": 0, "update": 0, "create": 8, "missing": 3}
    assert len(target.llms) == 2 and len(target.agents) == 5 and len(target.flows) == 1
    flow_agent = next(v[-1] for v in target.agents.values() if v[-1]["agent_name"] == "Flow agent")
    assert flow_agent["response_engine"]["conversation_flow_id"] in target.flows
    assert {a[-1]["response_engine"].get("llm_id") for a in target.agents.values()} - {None} == set(
        target.llms
    )


def test_429_then_success_honours_retry_after(fake, tmp_path, clock) -> None:
    server, app, _seeded = fake
    app.faults.fail_429 = 2
    app.faults.retry_after = "7"
    _out, meta = export(make_source(tmp_path, server.url, clock))
    assert clock.sleeps == [7.0, 7.0]
    assert meta["retries"] == 2
    assert meta["counts"]["agents"] == 5


def test_wrong_key_fails_clearly_without_the_key(fake, tmp_path, clock) -> None:
    server, app, _seeded = fake
    wrong = "key_wrong_5555555555"
    app.unauthorized = f"Unauthorized: no such key {wrong}"  # a server that echoes the key
    out = MemoryComponent()
    with pytest.raises(SourceError) as info:
        make_source(tmp_path, server.url, clock, key=wrong).backup(out, SourceContext())
    err = info.value
    assert "401" in err.message and "rejected the API key" in err.message
    assert "API key reference" in err.hint
    assert wrong not in err.message and wrong not in err.hint and "***" in err.message
    assert out.files == {}
    assert clock.sleeps == []  # 401 is not retried


def test_persistent_500_fails_after_retries(fake, tmp_path, clock) -> None:
    server, app, _seeded = fake
    app.faults.always_500 = True
    out = MemoryComponent()
    with pytest.raises(SourceError) as info:
        make_source(tmp_path, server.url, clock, max_retries=3).backup(out, SourceContext())
    assert "HTTP 500" in info.value.message and "after 4 attempts" in info.value.message
    assert "Internal server error" in info.value.message
    assert len(app.log) == 4 and len(clock.sleeps) == 3
    assert out.files == {}


def test_empty_account_fails_unless_allowed(tmp_path, clock) -> None:
    app = FakeRetell(api_key=KEY, clock=clock)
    with FakeSaasServer(app) as server:
        with pytest.raises(SourceError, match="no objects"):
            export(make_source(tmp_path, server.url, clock))
        out, meta = export(make_source(tmp_path, server.url, clock, allow_empty=True))
    assert set(out.files) == {"index.json"}
    assert meta["counts"]["agents"] == 0


def test_snapshot_without_export_refuses_restore(tmp_path, clock) -> None:
    source = make_source(tmp_path, "http://127.0.0.1:9", clock)
    with pytest.raises(SourceError, match="no Retell export"):
        source.restore(MemoryComponent(), SourceContext())


def test_plan_order_remaps_before_compare(fake, tmp_path, clock) -> None:
    """Deleting only an LLM makes its agents' references stale: the plan shows them as updates."""
    server, app, seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    llm_a = seeded["llms"][0]["llm_id"]
    before = copy.deepcopy(app.agents)
    del app.llms[llm_a]
    report = source.restore(snap, SourceContext())
    new_llm = report.details["id_map"]["llm"][llm_a]
    for agent in seeded["agents"][:2]:
        live = app.latest(agent["agent_id"])
        assert live["response_engine"]["llm_id"] == new_llm
        assert live["agent_name"] == before[agent["agent_id"]][-1]["agent_name"]


def test_failure_during_apply_names_the_object_and_progress(fake, tmp_path, clock) -> None:
    server, app, seeded = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    a = [x["agent_id"] for x in seeded["agents"]]
    app.latest(a[0])["agent_name"] = "drifted"
    # the snapshot's second agent points at an LLM that exists nowhere: the service refuses the update
    path = f"agents/{a[1]}.json"
    bad = json.loads(snap.files[path])
    bad["response_engine"]["llm_id"] = "llm_nowhere"
    snap.files[path] = json.dumps(bad).encode()
    order = sorted(a[:2])  # agents are restored in file-name order
    with pytest.raises(SourceError) as info:
        source.restore(snap, SourceContext())
    msg = info.value.message
    assert "HTTP 400" in msg and "llm_nowhere not found" in msg
    assert f"while restoring agent {a[1]}" in msg
    assert f"{1 if order[0] == a[0] else 0} change(s) were applied before it" in msg
    assert "run again" in info.value.hint
