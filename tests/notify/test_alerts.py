"""The alerts that are not an operation's own end: RPO and RTO breaches (once per breach, remembered on
this host), a lock that stopped a command, failed deliveries shown by ``status``, and the Prometheus
textfile rewritten after every operation. Delivered to a local HTTP receiver; no secret in any body."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from tests.helpers.fixtures import PASSWORD
from tests.notify.conftest import HttpReceiver

TOKEN = "alerttoken-6c1e93f0"


@pytest.fixture
def env(tmp_path: Path, repo_path: Path, http_receiver: HttpReceiver) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello " * 1000)
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
[repository]
url = "{repo_path}"
[components.app]
kind = "files"
paths = ["{data}"]
[profiles.daily]
components = ["app"]
[defaults]
profile = "daily"
[objectives]
rpo = "24h"
[status]
prometheus_textfile = "{tmp_path / "safehold.prom"}"
[notifications]
urls = [{{ env = "TEAM_URL" }}]
timeout = 30
lock_held_after = "1s"
''')
    return {
        "SAFEHOLD_CONFIG": str(cfg),
        "SAFEHOLD_AUDIT_LOG": str(tmp_path / "state" / "audit.jsonl"),
        "TEAM_URL": http_receiver.url("json", f"/team/{TOKEN}"),
    }


def _messages(receiver: HttpReceiver) -> list[dict[str, str]]:
    return [json.loads(q.body) for q in receiver.requests if q.path.startswith("/team")]


def _no_secret(texts: list[str]) -> None:
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text, text[:300]


def test_rpo_breach_is_sent_once_per_breach(env, run, http_receiver: HttpReceiver, tmp_path: Path) -> None:
    assert run("init", env=env).code == 0
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)).isoformat(timespec="seconds")
    # a plain-paths backup dated 30 h ago: the profile has no complete snapshot, the RPO is breached
    r = run("backup", str(tmp_path / "data"), "--time", old, env=env)
    assert r.code == 0, r.err
    (msg,) = _messages(http_receiver)
    assert msg["title"].startswith("safehold: rpo OBJECTIVE BREACHED on ") and msg["type"] == "warning"
    assert "the RPO of 1d 0h is breached for" in msg["message"] and "daily" in msg["message"]
    assert "no complete snapshot" in msg["message"] and "hint: Run the profile's backup" in msg["message"]
    prom = (tmp_path / "safehold.prom").read_text()  # rewritten after the backup, not only after status
    assert 'safehold_objective_met{objective="rpo"' in prom and "} 0\n" in prom

    # status finds the same breach: already told, not sent again (exit 5 all the same)
    http_receiver.requests.clear()
    r = run("status", env=env)
    assert r.code == 5 and "BREACHED rpo" in r.out
    assert _messages(http_receiver) == []

    # the breach ends (a complete backup of the profile), then starts again: sent again
    assert run("backup", env=env).code == 0
    assert _messages(http_receiver) == []  # a success is not in the default filter
    assert "} 1\n" in (tmp_path / "safehold.prom").read_text()
    cfg = Path(env["SAFEHOLD_CONFIG"])
    cfg.write_text(cfg.read_text().replace('rpo = "24h"', 'rpo = "1s"'))
    time.sleep(1.5)
    r = run("status", "--json", env=env)
    assert r.code == 5
    (msg,) = _messages(http_receiver)
    assert "the RPO of 1s is breached" in msg["message"]
    _no_secret([m["message"] + m["title"] for m in _messages(http_receiver)] + [r.out, r.err])


def test_rto_breach_from_status(env, run, http_receiver: HttpReceiver) -> None:
    cfg = Path(env["SAFEHOLD_CONFIG"])
    cfg.write_text(cfg.read_text().replace('rpo = "24h"', 'rpo = "24h"\nrto = "1h"'))
    assert run("init", env=env).code == 0
    assert run("backup", env=env).code == 0  # no drill yet: the RTO is unproven, which is a breach
    (msg,) = _messages(http_receiver)
    assert (
        msg["title"].startswith("safehold: rto OBJECTIVE BREACHED") and "no drill recorded" in msg["message"]
    )
    http_receiver.requests.clear()
    assert run("status", env=env).code == 5
    assert _messages(http_receiver) == []


def test_lock_held_is_sent_when_a_wait_times_out_or_the_lock_is_old(
    env, run, repo_path: Path, http_receiver: HttpReceiver
) -> None:
    assert run("init", env=env).code == 0
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = repo.lock(exclusive=True, operation="prune")
    try:
        r = run("backup", "--lock-wait", "1s", env=env)
        assert r.code == 11 and "waited 1 s" in r.err, r.err
        kinds = [m["title"] for m in _messages(http_receiver)]
        assert any(t.startswith("safehold: lock WARNING on") for t in kinds), kinds
        held = next(m for m in _messages(http_receiver) if m["title"].startswith("safehold: lock"))
        assert "waited 1s in vain" in held["message"] and "exclusive lock by prune" in held["message"]
        assert "backup on" in held["message"]

        # no wait, and the lock is older than lock_held_after (1 s): sent too
        http_receiver.requests.clear()
        r = run("check", env=env)
        assert r.code == 11
        held = next(m for m in _messages(http_receiver) if m["title"].startswith("safehold: lock"))
        assert "longer than 1s" in held["message"]
    finally:
        lock.release()
    _no_secret([q.body for q in http_receiver.requests])


def test_status_reports_failed_deliveries_until_one_succeeds(
    env, run, http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    cfg = Path(env["SAFEHOLD_CONFIG"])
    cfg.write_text(cfg.read_text().replace('rpo = "24h"', ""))  # no breach to send besides
    assert run("init", env=env).code == 0
    dead = env | {"TEAM_URL": f"json://127.0.0.1:1/{TOKEN}"}  # nothing listens there
    assert run("backup", "--profile", "nope", env=dead).code == 2  # a failure: notified, not delivered
    r = run("status", env=dead)
    assert "notifications: FAILED to env:TEAM_URL: 1 time(s) in a row" in r.out, r.out
    assert "last backup.failure" in r.out
    r = run("status", "--json", env=dead)
    (failing,) = r.json()["notifications"]
    assert failing["target"] == "env:TEAM_URL" and failing["event"] == "backup.failure"
    assert failing["failures"] == 1 and failing["sent_by"] == "backup"
    assert "safehold_notification_failing_targets 1" in (tmp_path / "safehold.prom").read_text()
    state = (tmp_path / "state" / "state.json").read_text()
    assert (tmp_path / "state" / "state.json").stat().st_mode & 0o777 == 0o600
    _no_secret([r.out, r.err, state])

    # one delivery that works clears it
    assert run("notify", "test", env=env).code == 0
    r = run("status", env=env)
    assert "notifications: no failed delivery" in r.out


def test_a_damaged_or_strange_state_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    from safehold.notify import Delivery
    from safehold.operations.observe import alerts

    path = tmp_path / "state.json"
    for junk in [b"\x00not json", b"[1, 2]", b'{"targets": [1], "breached": {"x": 1}}',
                 b'{"targets": {"t": "nope", "u": {"ok": false, "failures": "many"}}}']:  # fmt: skip
        path.write_bytes(junk)
        assert isinstance(alerts.failing_targets(path), list)
        assert alerts.new_breaches(["rpo:h:p"], ["rpo:h:p"], path) == ["rpo:h:p"]
        alerts.record_deliveries([Delivery("t", False, "refused")], "rpo.breach", path=path)
        failing = {f["target"]: f for f in alerts.failing_targets(path)}
        assert failing["t"]["failures"] >= 1 and failing["t"]["message"] == "refused"
        assert all(isinstance(f["failures"], int) for f in failing.values())
    alerts.remember_breaches(["rpo:h:p"], path)
    assert alerts.new_breaches(["rpo:h:p"], ["rpo:h:p"], path) == []
    assert alerts.new_breaches([], ["rpo:h:p"], path) == []  # met again: forgotten
    assert alerts.new_breaches(["rpo:h:p"], ["rpo:h:p"], path) == ["rpo:h:p"]
    # a symlink planted at the state's name is replaced, never written through
    victim = tmp_path / "victim"
    victim.write_text("keep")
    path.unlink()
    path.symlink_to(victim)
    alerts.record_deliveries([Delivery("t", True, "sent")], "test", path=path)
    assert victim.read_text() == "keep" and not path.is_symlink()
