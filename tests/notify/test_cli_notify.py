"""Notifications from real commands: a profile backup that succeeds, one that is partial, one that fails,
a check, a slow target, and 'notify test' — delivered to a local HTTP receiver and a local SMTP server,
pinged in order, with no secret in any message, ping or output."""

from __future__ import annotations

import email
import json
import time
from pathlib import Path

import pytest

from tests.helpers.fixtures import Result
from tests.notify.conftest import HttpReceiver, SmtpServer

PASS = "notify-test passphrase 7cc1"
TOKEN = "hooktoken-91b2e07d"
PING_KEY = "pingkey-5d0c33aa"
APP_SECRET = "APP_KEY=base64:s3cr3t-app-key-0042"


@pytest.fixture
def setup(tmp_path: Path, http_receiver: HttpReceiver, smtp_server: SmtpServer) -> dict[str, object]:
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.php").write_text("<?php echo 1;")
    (app / ".env").write_text(APP_SECRET + "\n")
    mail_url = tmp_path / "mail-url"
    mail_url.write_text(smtp_server.url() + "\n")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "NOTIFY_PASS" }}

[components.app]
kind = "files"
paths = ["{app}"]

[components.broken]
kind = "command"
command = ["sh", "-c", "echo 'dump tool: table x is damaged' >&2; exit 7"]
filename = "never.txt"

[profiles.good]
components = ["app"]

[profiles.partial]
components = ["app", "broken"]

[profiles.blocked]
components = ["app"]

[defaults]
profile = "good"

[notifications]
healthchecks_ping = {{ env = "PING_URL" }}
timeout = 5

[notifications.targets.team]
url = {{ env = "TEAM_URL" }}
on = ["all"]

[notifications.targets.mail]
url = {{ file = "{mail_url}" }}
''')
    blocked = cfg.with_name("blocked.toml")
    blocked.write_text(
        cfg.read_text()
        + '\n[[hooks.before_backup]]\ncommand = ["sh", "-c", "echo maintenance mode failed >&2; exit 3"]\n'
    )
    env = {
        "SAFEHOLD_CONFIG": str(cfg),
        "SAFEHOLD_REPOSITORY": "",
        "NOTIFY_PASS": PASS,
        "TEAM_URL": http_receiver.url("json", f"/team/{TOKEN}"),
        "PING_URL": http_receiver.url("http", f"/ping/{PING_KEY}"),
    }
    return {"env": env, "blocked": blocked, "tmp": tmp_path}


def _secrets(smtp: SmtpServer) -> list[str]:
    return [PASS, TOKEN, PING_KEY, smtp.password, "s3cr3t-app-key-0042"]


def _no_secrets(texts: list[str], smtp: SmtpServer) -> None:
    for text in texts:
        for secret in _secrets(smtp):
            assert secret not in text, (secret, text[:400])


def _mail_texts(smtp: SmtpServer) -> list[str]:
    out = []
    for raw in smtp.messages:
        msg = email.message_from_string(raw)
        out += [raw, str(msg["Subject"]), msg.get_payload(decode=True).decode()]
    return out


def test_success_partial_failure_and_check_are_delivered(
    setup, run, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    env = setup["env"]
    outputs: list[Result] = []
    assert run("init", env=env, password=None).code == 0

    r = run("backup", env=env, password=None)  # profile good
    outputs.append(r)
    assert r.code == 0, r.err
    paths = [p.split("?")[0] for p in http_receiver.paths()]
    assert paths == [f"/ping/{PING_KEY}/start", f"/team/{TOKEN}", f"/ping/{PING_KEY}"] or (
        sorted(paths) == sorted([f"/ping/{PING_KEY}/start", f"/team/{TOKEN}", f"/ping/{PING_KEY}"])
        and paths.index(f"/ping/{PING_KEY}/start") < paths.index(f"/ping/{PING_KEY}")
    )
    team = json.loads(next(q for q in http_receiver.requests if q.path.startswith("/team")).body)
    assert team["title"].startswith("safehold: backup ok on ") and team["title"].endswith("profile good")
    assert "snapshot: " in team["message"] and team["type"] == "success"
    assert smtp_server.messages == []  # mail listens to failures, partials, breaches and warnings only

    http_receiver.requests.clear()
    r = run("backup", "--profile", "partial", env=env, password=None)
    outputs.append(r)
    assert r.code == 1
    (mail,) = smtp_server.wait_for(1)
    msg = email.message_from_string(mail)
    text = msg.get_payload(decode=True).decode()
    assert "backup PARTIAL on" in msg["Subject"] and "profile partial" in msg["Subject"]
    assert "component broken: " in text and "exited with status 7" in text
    assert "table x is damaged" in text  # the tool's own words, through the log tail
    assert "last lines of the log:" in text and "snapshot: " in text
    fail = [q for q in http_receiver.requests if q.path.startswith(f"/ping/{PING_KEY}/fail")]
    assert len(fail) == 1 and "exited with status 7" in fail[0].body
    team = json.loads(next(q for q in http_receiver.requests if q.path.startswith("/team")).body)
    assert team["type"] == "warning" and "PARTIAL" in team["title"]

    http_receiver.requests.clear()
    r = run("backup", env=env | {"SAFEHOLD_CONFIG": str(setup["blocked"])}, password=None)
    outputs.append(r)
    assert r.code == 1
    mails = smtp_server.wait_for(2)
    msg = email.message_from_string(mails[1])
    text = msg.get_payload(decode=True).decode()
    assert "backup FAILED on" in msg["Subject"]
    assert "maintenance mode failed" in text and "no backup was taken" in text
    assert [q.path.split("?")[0] for q in http_receiver.requests if "/ping/" in q.path] == [
        f"/ping/{PING_KEY}/start",
        f"/ping/{PING_KEY}/fail",
    ]

    http_receiver.requests.clear()
    r = run("check", env=env, password=None)
    outputs.append(r)
    assert r.code == 0, r.err
    assert [q.path for q in http_receiver.requests] == [f"/team/{TOKEN}"]  # a check is not pinged
    assert "check ok" in json.loads(http_receiver.requests[0].body)["title"]

    bodies = [q.body for q in http_receiver.requests] + _mail_texts(smtp_server)
    _no_secrets(bodies + [o.out + o.err for o in outputs], smtp_server)


def test_a_dead_or_slow_target_warns_and_does_not_hold_up_the_backup(
    setup, run, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    env = dict(setup["env"])
    env["TEAM_URL"] = f"json://127.0.0.1:1/{TOKEN}"  # nothing listens there
    assert run("init", env=env, password=None).code == 0
    cfg = Path(env["SAFEHOLD_CONFIG"])
    cfg.write_text(cfg.read_text().replace("timeout = 5", "timeout = 1"))
    http_receiver.delay = 20  # the ping endpoint answers after 20 s
    started = time.monotonic()
    r = run("backup", env=env, password=None)
    took = time.monotonic() - started
    assert r.code == 0, r.err
    assert took < 12, took  # the 20 s endpoint held it up by at most the 1 s timeout
    assert "warning: notification to team failed: not delivered" in r.err
    assert "warning: notification to healthchecks failed: no answer within 1 s" in r.err
    _no_secrets([r.out, r.err], smtp_server)


def test_notify_test_sends_to_every_target_or_one(
    setup, run, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    env = setup["env"]
    r = run("notify", "test", "--json", env=env, password=None)
    assert r.code == 0, r.err
    assert {d["target"] for d in r.json()["deliveries"]} == {"team", "mail", "healthchecks"}
    assert all(d["ok"] for d in r.json()["deliveries"])
    assert len(smtp_server.wait_for(1)) == 1
    paths = sorted(q.path.split("?")[0] for q in http_receiver.requests)
    assert paths == [f"/ping/{PING_KEY}/log", f"/team/{TOKEN}"]  # /log: recorded, no change of state
    assert (
        "test message"
        in json.loads(next(q for q in http_receiver.requests if "/team" in q.path).body)["title"]
    )

    http_receiver.requests.clear()
    r = run("notify", "test", "team", env=env, password=None)
    assert r.code == 0 and [q.path for q in http_receiver.requests] == [f"/team/{TOKEN}"]
    assert "sent" in r.out and "team" in r.out

    r = run("notify", "test", "nobody", env=env, password=None)
    assert r.code == 1 and "no notification target 'nobody'" in r.err and "team, mail" in r.err

    r = run("notify", "test", "team", env=env | {"TEAM_URL": "json://127.0.0.1:1/x"}, password=None)
    assert r.code == 1 and "FAILED" in r.out and "did not receive" in r.err

    r = run("notify", "test", "team", env=env | {"TEAM_URL": f"slack://{TOKEN}\nBcc: x"}, password=None)
    assert r.code == 1 and "a line break" in r.out
    _no_secrets([r.out, r.err], smtp_server)
