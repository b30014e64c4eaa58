"""The notifier on its own: events to the targets that want them, within the deadline, without secrets."""

from __future__ import annotations

import email
import json
import time
from urllib.parse import parse_qs

import pytest

from safehold.config.notifications import EVENT_KINDS, wanted
from safehold.config.schema import Notifications
from safehold.notify import Event, Notifier, Redactor
from safehold.notify.ping import ping_url
from safehold.notify.redact import url_parts
from safehold.secrets import SecretRef
from tests.notify.conftest import HttpReceiver, SmtpServer

TOKEN = "tok-3f9a8c77e1"


def _event(kind: str = "backup.failure", **kw: object) -> Event:
    fields: dict[str, object] = {
        "profile": "quick",
        "snapshot_ids": ["1a2b3c4d5e6f"],
        "error": "component database failed: mysqldump exited with status 2",
        "hint": "See the snapshot's backup.log.",
        "details": ["component database: mysqldump exited with status 2"],
        "log_tail": ["  app   files  ok", "  database  mysql  FAILED"],
        "command": "safehold backup --profile quick",
    }
    fields.update(kw)
    return Event(kind, "web1", "backup of profile quick on web1 FAILED", **fields)  # type: ignore[arg-type]


def test_filters_default_to_failures_partials_breaches_and_warnings() -> None:
    default = Notifications().on
    sent = {k for k in EVENT_KINDS if wanted(list(default), k)}
    assert sent == {
        "backup.partial", "backup.failure", "check.failure", "drill.failure", "prune.failure",
        "rpo.breach", "rto.breach", "disk.low", "lock.held", "guard.failure", "test",
    }  # fmt: skip
    assert wanted(["backup.success"], "backup.success") and not wanted(["backup.success"], "check.success")
    assert wanted(["all"], "check.success") and not wanted(["all"], "backup.start")
    assert wanted(["start"], "backup.start")


def test_message_names_host_profile_snapshot_error_and_log_tail() -> None:
    e = _event()
    assert e.title() == "safehold: backup FAILED on web1, profile quick"
    body = e.body()
    for needle in ("host: web1", "profile: quick", "snapshot: 1a2b3c4d5e6f", "error: component database",
                   "hint: See", "what failed:", "last lines of the log:", "database  mysql  FAILED",
                   "command: safehold backup --profile quick"):  # fmt: skip
        assert needle in body, needle
    with pytest.raises(ValueError, match="unknown event kind"):
        Event("backup.exploded", "h", "s")


def test_redactor_masks_url_tokens_but_keeps_words() -> None:
    url = f"https://hooks.slack.com/services/T0AAAA1/B0BBBB2/{TOKEN}?key=q-secret-1"
    parts = url_parts(url)
    assert TOKEN in parts and "q-secret-1" in parts and "services" not in parts
    r = Redactor(["hunter2-db"])
    r.add_url(url)
    text = r(f"posting to {url} failed; token {TOKEN}; db hunter2-db; services are fine")
    assert TOKEN not in text and "hunter2-db" not in text and "q-secret-1" not in text
    assert "services are fine" in text


def test_ping_urls() -> None:
    assert ping_url("https://hc.example/abc/", "start", "r1") == "https://hc.example/abc/start?rid=r1"
    assert ping_url("https://hc.example/abc?x=1", "fail", None) == "https://hc.example/abc/fail?x=1"
    assert ping_url("https://hc.example/abc", "success", "r") == "https://hc.example/abc?rid=r"


def _settings(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, **kw: object) -> Notifications:
    monkeypatch.setenv("N_JSON_URL", receiver.url("json", f"/hook/{TOKEN}"))
    monkeypatch.setenv("N_PING_URL", receiver.url("http", f"/ping/{TOKEN}"))
    data: dict[str, object] = {
        "urls": [{"env": "N_JSON_URL"}],
        "healthchecks_ping": {"env": "N_PING_URL"},
        "timeout": 5,
    }
    data.update(kw)
    return Notifications.model_validate(data)


def test_failure_reaches_a_json_webhook_and_the_pings_come_in_order(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = Notifier(_settings(http_receiver, monkeypatch), host="web1")
    n.begin("backup", profile="quick")
    deliveries = n.finish(_event())
    assert all(d.ok for d in deliveries), deliveries
    reqs = http_receiver.wait_for(3)
    pings = [r for r in reqs if r.path.startswith("/ping/")]
    assert [p.path.split("?")[0] for p in pings] == [f"/ping/{TOKEN}/start", f"/ping/{TOKEN}/fail"]
    rids = {parse_qs(p.path.split("?")[1])["rid"][0] for p in pings}
    assert len(rids) == 1  # one run id pairs start and end
    assert "database  mysql  FAILED" in pings[1].body  # the log tail is the fail ping's body
    hook = next(r for r in reqs if r.path.startswith("/hook/"))
    payload = json.loads(hook.body)
    assert payload["title"] == "safehold: backup FAILED on web1, profile quick"
    assert "snapshot: 1a2b3c4d5e6f" in payload["message"] and payload["type"] == "failure"


def test_success_is_sent_only_where_asked_and_pings_success(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("N_ALL_URL", http_receiver.url("form", "/all"))
    settings = _settings(
        http_receiver, monkeypatch, targets={"team": {"url": {"env": "N_ALL_URL"}, "on": ["all"]}}
    )
    n = Notifier(settings, host="web1")
    n.begin("backup")
    done = n.finish(_event("backup.success", error=None, hint=None, details=[]))
    assert sorted(d.target for d in done) == ["healthchecks", "team"]
    paths = [p.split("?")[0] for p in http_receiver.paths()]
    assert paths == [f"/ping/{TOKEN}/start", "/all", f"/ping/{TOKEN}"] or sorted(paths) == sorted(
        [f"/ping/{TOKEN}/start", "/all", f"/ping/{TOKEN}"]
    )
    assert paths.index(f"/ping/{TOKEN}/start") < paths.index(f"/ping/{TOKEN}")
    form = http_receiver.requests[[p.split("?")[0] for p in http_receiver.paths()].index("/all")]
    assert "backup+ok+on+web1" in form.body or "backup ok on web1" in form.body


def test_a_slow_target_does_not_hold_the_operation_beyond_the_timeout(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_receiver.delay = 6
    n = Notifier(_settings(http_receiver, monkeypatch, timeout=1), host="web1")
    n.begin("backup")
    started = time.monotonic()
    done = n.finish(_event())
    took = time.monotonic() - started
    assert took < 2.5, took
    failed = {d.target: d.message for d in done if not d.ok}
    assert "env:N_JSON_URL" in failed and "no answer within 1 s" in failed["env:N_JSON_URL"]


def test_mail_through_a_local_smtp_server_without_secrets(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    url_file = tmp_path / "mail-url"
    url_file.write_text(smtp_server.url() + "\n")
    settings = Notifications.model_validate({"targets": {"mail": {"url": {"file": str(url_file)}}}})
    n = Notifier(settings, host="web1")
    (d,) = n.send(_event("backup.partial", log_tail=[f"leaked {smtp_server.password}?"]))
    assert d.ok, d
    (raw,) = smtp_server.wait_for(1)
    msg = email.message_from_string(raw)
    text = msg.get_payload(decode=True).decode()
    assert msg["Subject"] == "safehold: backup PARTIAL on web1, profile quick"
    assert "snapshot: 1a2b3c4d5e6f" in text
    assert smtp_server.password not in raw and smtp_server.password not in text
    assert "leaked ***?" in text


def test_unusable_targets_are_warnings_naming_the_reference_never_the_url(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAD_SCHEME", f"nosuchservice://{TOKEN}/x")
    monkeypatch.setenv("BAD_LINES", f"json://127.0.0.1:1/{TOKEN}\r\nX-Injected: 1")
    monkeypatch.setenv("REFUSED", f"json://127.0.0.1:1/{TOKEN}")  # nothing listens on port 1
    settings = Notifications.model_validate(
        {"urls": [{"env": "BAD_SCHEME"}, {"env": "BAD_LINES"}, {"env": "REFUSED"}, {"env": "UNSET_VAR_X"}]}
    )
    done = {d.target: d for d in Notifier(settings, host="h").send(_event())}
    assert not any(d.ok for d in done.values())
    assert "not one apprise can send to (nosuchservice://)" in done["env:BAD_SCHEME"].message
    assert "a carriage return" in done["env:BAD_LINES"].message
    assert "not delivered" in done["env:REFUSED"].message
    assert "UNSET_VAR_X is not set" in done["env:UNSET_VAR_X"].message
    assert all(TOKEN not in d.message for d in done.values())


def test_notify_test_unknown_target_and_nothing_configured() -> None:
    from safehold.errors import SafeholdError

    with pytest.raises(SafeholdError, match="no notification target is configured"):
        Notifier(Notifications(), host="h").test()
    n = Notifier(Notifications.model_validate({"urls": ["env:X"]}), host="h")
    with pytest.raises(SafeholdError, match="no notification target 'nope'") as info:
        n.test("nope")
    assert "env:X" in (info.value.hint or "")


def test_literal_urls_are_refused_by_the_configuration() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="literal secrets are not allowed"):
        Notifications.model_validate({"targets": {"x": {"url": f"slack://{TOKEN}"}}})
    with pytest.raises(ValidationError, match="notification target name"):
        Notifications.model_validate({"targets": {"Bad Name": {"url": "env:X"}}})
    assert isinstance(Notifications.model_validate({"urls": ["env:X"]}).urls[0], SecretRef)
