"""'safehold guard': the command runs only after a complete backup, its exit code is guard's, both are in
the audit log (locally and in the repository) with the command's secrets masked, and a guard whose backup
failed tells people that the command did not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safehold.operations.observe import audit
from tests.notify.conftest import HttpReceiver, http_receiver  # noqa: F401 - the fixture

PASS = "guard passphrase 41c9"
TOKEN = "deploytoken-7f3e21aa"
DB_PW = "dbpw-c0ffee-77"
HOOK = "hooktoken-0a9b8c7d"


@pytest.fixture
def setup(tmp_path: Path, http_receiver: HttpReceiver) -> dict[str, str]:  # noqa: F811
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.php").write_text("<?php echo 1;")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "GUARD_PASS" }}

[components.app]
kind = "files"
paths = ["{app}"]

[components.broken]
kind = "command"
command = ["sh", "-c", "echo 'dump failed' >&2; exit 7"]

[profiles.good]
components = ["app"]

[profiles.bad]
components = ["app", "broken"]

[defaults]
profile = "good"

[notifications.targets.team]
url = {{ env = "TEAM_URL" }}
on = ["all"]
''')
    return {
        "SAFEHOLD_CONFIG": str(cfg),
        "SAFEHOLD_REPOSITORY": "",
        "GUARD_PASS": PASS,
        audit.AUDIT_ENV: str(tmp_path / "audit.jsonl"),
        "TEAM_URL": http_receiver.url("json", f"/team/{HOOK}"),
    }


def _deploy(marker: Path, code: int) -> list[str]:
    """A 'deployment' that records the snapshot it was given and exits with ``code``; its command line
    carries secrets the way people write them."""
    script = f'echo "$SAFEHOLD_GUARD_SNAPSHOT" > {marker}; exit {code}'
    return ["sh", "-c", script, "deploy", "--token", TOKEN, f"--db-password={DB_PW}", f"https://ci:{TOKEN}@git.example.com/x", PASS]  # fmt: skip


def test_a_complete_backup_runs_the_command_and_returns_its_exit_code(
    setup: dict[str, str],
    run,
    tmp_path: Path,
    http_receiver: HttpReceiver,  # noqa: F811
) -> None:
    assert run("init", env=setup, password=None).code == 0
    marker = tmp_path / "deployed"
    r = run("guard", "--", *_deploy(marker, 5), env=setup, password=None)
    assert r.code == 5, r.err
    snapshot = marker.read_text().strip()
    assert len(snapshot) == 64
    assert f"snapshot {snapshot[:8]} is complete; running: sh -c" in r.err
    assert "the command exited with status 5" in r.err

    (rec,) = [x for x in audit.read_local(Path(setup[audit.AUDIT_ENV])) if x["command"] == "guard"]
    assert rec["snapshot_ids"] == [snapshot] and rec["exit_code"] == 5 and rec["profile"] == "good"
    # the repository passphrase, resolved during the backup, is masked too
    masked = ["deploy", "--token", "***", "--db-password=***", "https://ci:***@git.example.com/x", "***"]
    assert rec["extra"]["guard"] == {
        "argv": ["sh", "-c", rec["extra"]["guard"]["argv"][2], *masked],
        "ran": True,
        "exit_code": 5,
        "backup_exit_code": 0,
    }
    in_repo = run("log", "--repository", "--json", env=setup, password=None)
    assert [(x["command"], x["exit_code"]) for x in in_repo.json()][-1] == ("guard", 5)
    # the backup itself succeeded: that is what the team hears
    (team,) = http_receiver.wait_for(1)
    assert "backup ok on" in json.loads(team.body)["title"]
    raw = Path(setup[audit.AUDIT_ENV]).read_text() + json.dumps(in_repo.json()) + team.body + r.err
    for secret in (TOKEN, DB_PW, PASS, HOOK):
        assert secret not in raw


def test_a_failed_backup_does_not_run_the_command(
    setup: dict[str, str],
    run,
    tmp_path: Path,
    http_receiver: HttpReceiver,  # noqa: F811
) -> None:
    assert run("init", env=setup, password=None).code == 0
    marker = tmp_path / "deployed"
    r = run("guard", "--profile", "bad", "--", *_deploy(marker, 0), env=setup, password=None)
    assert r.code == 1  # the backup's exit code: a component failed, the snapshot is partial
    assert not marker.exists()
    assert "the command was NOT run" in r.err and "component(s) broken failed" in r.err

    (rec,) = [x for x in audit.read_local(Path(setup[audit.AUDIT_ENV])) if x["command"] == "guard"]
    assert rec["exit_code"] == 1 and rec["extra"]["guard"]["ran"] is False
    assert rec["extra"]["guard"]["backup_exit_code"] == 1 and len(rec["snapshot_ids"]) == 1
    (team,) = http_receiver.wait_for(1)
    message = json.loads(team.body)
    assert message["title"].startswith("safehold: guard FAILED on ") and message["type"] == "failure"
    assert "not run: sh -c" in message["message"] and "--token '***'" in message["message"]
    for secret in (TOKEN, DB_PW, PASS, HOOK):
        assert secret not in team.body + r.err + json.dumps(rec)


def test_a_missing_repository_fails_before_anything_runs(setup: dict[str, str], run, tmp_path: Path) -> None:
    marker = tmp_path / "deployed"
    r = run("guard", "--", *_deploy(marker, 0), env=setup, password=None)
    assert r.code == 10 and not marker.exists()


def test_the_command_goes_after_a_double_dash(setup: dict[str, str], run) -> None:
    r = run("guard", "echo", "hi", env=setup, password=None)
    assert r.code == 2 and "write the command after '--'" in r.err
    r = run("guard", "--", "--json", env=setup, password=None)
    assert r.code == 10 and not r.out.startswith("{")  # --json after -- is the command's, not ours


def test_a_command_that_cannot_start_exits_127(setup: dict[str, str], run) -> None:
    assert run("init", env=setup, password=None).code == 0
    r = run("guard", "--", "no-such-deploy-tool-9f", env=setup, password=None)
    assert r.code == 127 and "command not found" in r.err


def test_masked_command_hides_what_looks_secret() -> None:
    argv = ["deploy", "--token", "t1", "--api-key=k1", "-psecret", "db", "-p", "22", "DB_PASSWORD=x",
            "-H", "Authorization: Bearer abc", "https://u:pw@h/x", "--tag", "v1", "plain"]  # fmt: skip
    assert audit.masked_command(argv) == [
        "deploy", "--token", "***", "--api-key=***", "-p***", "***", "-p", "22", "DB_PASSWORD=***",
        "-H", "Authorization: ***", "https://u:***@h/x", "--tag", "v1", "plain",
    ]  # fmt: skip
    assert audit.masked_args(["guard", "-n", "--", "x", "--password", "p"]) == [
        "guard", "-n", "--", "x", "--password", "***",
    ]  # fmt: skip
