"""diff_exports: field-by-field configuration drift between two SaaS exports."""

from __future__ import annotations

import json
from pathlib import Path

from safehold.sources.base import SourceContext
from safehold.sources.saas.calcom import CalcomSource
from safehold.sources.saas.common import dump_json
from safehold.sources.saas.diff import diff_exports
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_seed import seed_calcom
from tests.fakes.saas_server import FakeClock, FakeSaasServer
from tests.sources.memcomponent import MemoryComponent


def test_added_removed_changed_fields() -> None:
    old = {
        "index.json": dump_json({"counts": {"agents": 2}}),
        "agents/a.json": dump_json(
            {
                "agent_id": "a",
                "agent_name": "Front desk",
                "last_modification_timestamp": 1,
                "response_engine": {"type": "retell-llm", "llm_id": "llm_1"},
                "tags": ["x"],
            }
        ),
        "agents/b.json": dump_json({"agent_id": "b", "agent_name": "Old"}),
        "llms/llm_1.json": dump_json({"llm_id": "llm_1", "general_prompt": "p" * 300}),
    }
    new = {
        "index.json": dump_json({"counts": {"agents": 2}}),
        "agents/a.json": dump_json(
            {
                "agent_id": "a",
                "agent_name": "Reception",
                "last_modification_timestamp": 2,
                "response_engine": {"type": "retell-llm", "llm_id": "llm_2"},
                "tags": ["x", "y"],
                "voice_id": "v",
            }
        ),
        "agents/c.json": dump_json({"agent_id": "c", "agent_name": "New one"}),
        "llms/llm_1.json": dump_json({"llm_id": "llm_1", "general_prompt": "q" * 300}),
    }
    lines = diff_exports(old, new)
    assert lines == [
        '~ agents/a.json: agent_name: "Front desk" -> "Reception"',
        '~ agents/a.json: response_engine.llm_id: "llm_1" -> "llm_2"',
        '~ agents/a.json: tags[1]: (absent) -> "y"',
        '~ agents/a.json: voice_id: (absent) -> "v"',
        "- agents/b.json (Old)",
        "+ agents/c.json (New one)",
        f'~ llms/llm_1.json: general_prompt: "{"p" * 116}... -> "{"q" * 116}...',
    ]
    assert diff_exports(old, old) == []


def test_secrets_are_never_shown() -> None:
    old = {"webhooks/1.json": dump_json({"id": "1", "secret": "hunter2", "auth": {"api_key": "k1"}})}
    new = {"webhooks/1.json": dump_json({"id": "1", "secret": "swordfish", "auth": {"api_key": "k2"}})}
    lines = diff_exports(old, new)
    assert lines == [
        "~ webhooks/1.json: auth.api_key: (secret changed)",
        "~ webhooks/1.json: secret: (secret changed)",
    ]
    nested_old = {"x.json": dump_json({"cfg": None})}
    nested_new = {"x.json": dump_json({"cfg": {"password": "pw123", "user": "u"}})}
    text = "\n".join(diff_exports(nested_old, nested_new))
    assert "pw123" not in text and '"password": "***"' in text


def test_not_json_and_non_json_paths() -> None:
    assert diff_exports({"a.json": b"{"}, {"a.json": b"{}"}) == ["~ a.json: changed (not JSON)"]
    assert diff_exports({"notes.txt": b"a"}, {"notes.txt": b"b"}) == []


def test_drift_between_two_real_exports(tmp_path: Path) -> None:
    clock = FakeClock()
    key = "cal_live_diff_test"
    keyfile = tmp_path / "key"
    keyfile.write_text(key)
    app = FakeCalcom(api_key=key, clock=clock)
    s = seed_calcom(app, members=2, hooks=2)
    with FakeSaasServer(app) as server:
        options = CalcomSource.Options.model_validate(
            {"api_key": {"file": str(keyfile)}, "base_url": server.url + "/v2"}
        )
        source = CalcomSource("calcom", options, clock=clock)
        first, second = MemoryComponent(), MemoryComponent()
        source.backup(first, SourceContext())
        et = s["event_types"][0]["id"]
        app.event_types[et]["lengthInMinutes"] = 45
        hook = s["hooks"][0]["id"]
        app.webhooks[hook]["secret"] = "new-secret-value"
        del app.webhooks[s["hooks"][1]["id"]]
        source.backup(second, SourceContext())
    lines = diff_exports(first.files, second.files)
    assert sorted(lines) == sorted(
        [
            f"~ event-types/{et}.json: lengthInMinutes: 60 -> 45",
            f"~ webhooks/{hook}.json: secret: (secret changed)",
            f"- webhooks/{s['hooks'][1]['id']}.json (https://example.invalid/hook1)",
        ]
    )
    assert lines == sorted(lines, key=lambda line: line[2:].split(":")[0].split(" ")[0])  # by path
    assert "new-secret-value" not in json.dumps(lines)
