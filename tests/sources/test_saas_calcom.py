"""saas/calcom against the local fake Cal.com server: export, pagination, rate limits, plan, apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.registry import source_class
from safehold.sources.saas.calcom import CalcomSource
from safehold.sources.saas.calcom.restore import event_type_body
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_seed import seed_calcom, snapshot_state
from tests.fakes.saas_server import FakeClock, FakeSaasServer, Request
from tests.sources.memcomponent import MemoryComponent

KEY = "cal_live_0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock):
    app = FakeCalcom(api_key=KEY, clock=clock)
    seeded = seed_calcom(app)
    with FakeSaasServer(app) as server:
        yield server, app, seeded


def make_source(tmp_path: Path, url: str, clock: FakeClock, key: str = KEY, **opts: Any) -> CalcomSource:
    keyfile = tmp_path / f"key-{abs(hash(key))}"
    keyfile.write_text(key)
    options = CalcomSource.Options.model_validate(
        {"api_key": {"file": str(keyfile)}, "base_url": url + "/v2", **opts}
    )
    return CalcomSource("calcom", options, clock=clock)


def export(source: CalcomSource) -> tuple[MemoryComponent, dict[str, Any]]:
    out = MemoryComponent()
    return out, source.backup(out, SourceContext())


def test_registered_kind() -> None:
    assert source_class("saas/calcom") is CalcomSource
    for name, field in CalcomSource.Options.model_fields.items():
        assert field.description, name
        assert field.examples, name


def test_export_layout_pagination_and_headers(fake, tmp_path, clock) -> None:
    server, app, s = fake
    out, meta = export(make_source(tmp_path, server.url, clock, page_size=2))
    team = s["team"]["id"]
    expected = {
        *(f"event-types/{e['id']}.json" for e in s["event_types"]),
        *(f"schedules/{x['id']}.json" for x in s["schedules"]),
        f"teams/{team}.json",
        f"teams/{team}/event-types/{s['team_et']['id']}.json",
        *(f"teams/{team}/memberships/{m['id']}.json" for m in s["members"]),
        *(f"webhooks/{h['id']}.json" for h in s["hooks"]),
        "index.json",
    }
    assert set(out.files) == expected
    for path, data in out.files.items():
        assert data == (json.dumps(json.loads(data), sort_keys=True, indent=2) + "\n").encode(), path
    assert json.loads(out.files[f"event-types/{s['event_types'][1]['id']}.json"])["seatsPerTimeSlot"] == 10
    # five memberships at take=2: skip 0, 2, 4 (the last page is short); three webhooks: skip 0, 2
    members = [r.query for r in app.log if r.path == f"/v2/teams/{team}/memberships"]
    assert members == [{"skip": "0", "take": "2"}, {"skip": "2", "take": "2"}, {"skip": "4", "take": "2"}]
    assert [r.query["skip"] for r in app.log if r.path == "/v2/webhooks"] == ["0", "2"]
    versions = {r.path: r.headers.get("cal-api-version") for r in app.log}
    assert versions["/v2/event-types"] == "2024-06-14"
    assert versions["/v2/schedules"] == "2024-06-11"
    assert meta["counts"] == {
        "event-types": 3,
        "schedules": 2,
        "teams": 1,
        "team-event-types": 1,
        "memberships": 5,
        "webhooks": 3,
    }
    assert KEY not in json.dumps(meta)


def test_event_type_body_conversions() -> None:
    body = event_type_body(
        {
            "title": "A",
            "seatsPerTimeSlot": None,
            "recurrence": None,
            "schedulingType": None,
            "bookingFields": [],
        }
    )
    assert body == {
        "title": "A",
        "seats": {"disabled": True},
        "recurrence": {"disabled": True},
        "bookingFields": [],
    }
    body = event_type_body(
        {"seatsPerTimeSlot": 4, "seatsShowAttendees": True, "schedulingType": "ROUND_ROBIN"}
    )
    assert body == {
        "seats": {"seatsPerTimeSlot": 4, "showAttendeeInfo": True, "showAvailabilityCount": True},
        "schedulingType": "roundRobin",
    }


def test_plan_apply_roundtrip(fake, tmp_path, clock) -> None:
    server, app, s = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    office, evening = (x["id"] for x in s["schedules"])
    consult, workshop, weekly = (e["id"] for e in s["event_types"])
    team, tet = s["team"]["id"], s["team_et"]["id"]
    m0 = s["members"][0]["id"]
    h0, h1 = s["hooks"][0]["id"], s["hooks"][1]["id"]
    original = snapshot_state(app)

    del app.schedules[office]  # referenced by the consultation
    app.event_types[consult]["scheduleId"] = None
    app.event_types[workshop].update(seatsPerTimeSlot=None, title="Changed")
    app.event_types[weekly]["recurrence"] = None
    app.event_types[consult]["bookingFields"].append({"type": "email", "slug": "email", "required": True})
    del app.event_types[weekly]["slug"]
    app.teams[team]["name"] = "Changed"
    app.team_event_types[team][tet]["schedulingType"] = "ROUND_ROBIN"
    app.memberships[team][m0]["role"] = "ADMIN"
    app.webhooks[h0]["active"] = False
    del app.webhooks[h1]

    expected = {
        ("schedule", str(office)): ("create", []),
        ("schedule", str(evening)): ("unchanged", []),
        ("event-type", str(consult)): ("update", ["bookingFields", "scheduleId"]),
        ("event-type", str(workshop)): ("update", ["seatsPerTimeSlot", "title"]),
        ("event-type", str(weekly)): ("update", ["recurrence", "slug"]),
        ("team", str(team)): ("update", ["name"]),
        ("team-event-type", f"{team}/{tet}"): ("update", ["schedulingType"]),
        **{("membership", f"{team}/{m['id']}"): ("unchanged", []) for m in s["members"]},
        ("membership", f"{team}/{m0}"): ("update", ["role"]),
        ("webhook", h0): ("update", ["active"]),
        ("webhook", h1): ("missing", []),
        ("webhook", s["hooks"][2]["id"]): ("unchanged", []),
    }
    drifted = snapshot_state(app)
    app.log.clear()
    plan = source.restore(snap, SourceContext(dry_run=True))
    got = {(e["kind"], e["key"]): (e["action"], e["fields"]) for e in plan.details["plan"]}
    assert got == expected
    kinds = [e["kind"] for e in plan.details["plan"]]
    assert kinds == sorted(
        kinds, key=["schedule", "event-type", "team", "team-event-type", "membership", "webhook"].index
    )
    assert snapshot_state(app) == drifted
    assert {r.method for r in app.log} == {"GET"}

    report = source.restore(snap, SourceContext())
    new_office = report.details["id_map"]["schedule"][str(office)]
    assert new_office != office and new_office in app.schedules
    assert app.event_types[consult]["scheduleId"] == new_office
    assert any(f"webhook {h1} is missing" in w for w in report.warnings)

    # everything equals the original, modulo the re-created schedule's id and the deleted webhook
    now = snapshot_state(app)
    expected_state = original
    expected_state["schedules"][new_office] = {**expected_state["schedules"].pop(office), "id": new_office}
    expected_state["event_types"][consult]["scheduleId"] = new_office
    del expected_state["webhooks"][h1]
    assert now == expected_state

    # a second restore adopts the re-created schedule instead of making another one
    again = source.restore(snap, SourceContext())
    assert again.details["counts"] == {"unchanged": 14, "update": 0, "create": 0, "missing": 1}
    assert again.details["id_map"]["schedule"] == {str(office): new_office}
    assert len(app.schedules) == 2


def test_deleted_event_type_with_live_slug_is_adopted(fake, tmp_path, clock) -> None:
    server, app, s = fake
    source = make_source(tmp_path, server.url, clock)
    snap, _ = export(source)
    consult = s["event_types"][0]
    del app.event_types[consult["id"]]
    copy_ = app.add_event_type(title="Hand-made copy", slug="consultation", lengthInMinutes=15)
    report = source.restore(snap, SourceContext())
    entry = next(e for e in report.details["plan"] if e["key"] == str(consult["id"]))
    assert (entry["action"], entry["new_key"]) == ("update", str(copy_["id"]))
    assert "lengthInMinutes" in entry["fields"] and "title" in entry["fields"]
    assert app.event_types[copy_["id"]]["title"] == "Consultation"
    assert len(app.event_types) == 3


def test_limiter_keeps_under_the_server_limit(tmp_path, clock) -> None:
    app = FakeCalcom(api_key=KEY, clock=clock, limit=5, window=60, block=60)
    seed_calcom(app, members=6, hooks=2)
    with FakeSaasServer(app) as server:
        _out, meta = export(make_source(tmp_path, server.url, clock, page_size=2, rate_limit_per_minute=5))
    assert app.limited == 0
    n = len(app.log)
    assert meta["requests"] == n >= 10
    # n requests at 5 per 60 s of fake time: a full wait after every fifth
    assert meta["rate_limit_wait_s"] == pytest.approx(60 * ((n - 1) // 5), abs=1)
    assert meta["counts"]["memberships"] == 6


def test_remaining_zero_header_pauses_the_client(tmp_path, clock) -> None:
    """The server announces an empty budget: the client waits for the reset instead of running into 429."""
    app = FakeCalcom(api_key=KEY, clock=clock, limit=3, window=60, block=60)
    seed_calcom(app, members=1, hooks=1)
    with FakeSaasServer(app) as server:
        _out, meta = export(make_source(tmp_path, server.url, clock))
    assert app.limited == 0
    assert clock.sleeps == [60.0]
    assert meta["counts"]["webhooks"] == 1


def test_429_waits_for_reset_header_without_retry_after(tmp_path, clock) -> None:
    app = FakeCalcom(api_key=KEY, clock=clock, window=30)
    seed_calcom(app, members=1, hooks=1)
    app.faults.fail_429 = 1
    assert "retry-after" not in {
        k.lower() for k in app.fault_429(Request("GET", "/v2/x", {}, {}, None)).headers
    }
    with FakeSaasServer(app) as server:
        _out, meta = export(make_source(tmp_path, server.url, clock))
    assert meta["retries"] == 1
    assert clock.sleeps == [30.0]


def test_injected_429s_then_success(fake, tmp_path, clock) -> None:
    server, app, _s = fake
    app.faults.fail_429 = 2
    _out, meta = export(make_source(tmp_path, server.url, clock))
    assert meta["retries"] == 2
    assert len(clock.sleeps) == 2 and all(0 < s <= 60 for s in clock.sleeps)


def test_wrong_key_fails_clearly(fake, tmp_path, clock) -> None:
    server, _app, _s = fake
    out = MemoryComponent()
    with pytest.raises(SourceError) as info:
        make_source(tmp_path, server.url, clock, key="cal_live_wrong").backup(out, SourceContext())
    assert "HTTP 401" in info.value.message and "Invalid Access Token" in info.value.message
    assert "cal_live_wrong" not in info.value.message and KEY not in info.value.message
    assert "API key reference" in info.value.hint
    assert out.files == {}


def test_persistent_500_fails(fake, tmp_path, clock) -> None:
    server, app, _s = fake
    app.faults.always_500 = True
    out = MemoryComponent()
    with pytest.raises(SourceError) as info:
        make_source(tmp_path, server.url, clock).backup(out, SourceContext())
    assert "HTTP 500" in info.value.message and "after 3 attempts" in info.value.message
    assert "InternalServerError" in info.value.message
    assert out.files == {}


def test_missing_version_header_is_refused_by_the_fake(fake) -> None:
    """The fake's documented strictness, so a client that forgets the header fails in tests."""
    import httpx

    server, _app, _s = fake
    resp = httpx.get(server.url + "/v2/event-types", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequestException"
