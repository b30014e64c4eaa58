"""The audit log: one record per operation, locally (hash-chained, tamper-evident) and encrypted in the
repository; 'safehold log' shows either; no secret in any record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from safehold.operations.observe import audit

PASS = "audit passphrase 0b7e"


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "audit.jsonl"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


def test_chain_detects_changed_and_removed_lines(audit_log: Path) -> None:
    for n in range(4):
        audit.append_local(audit.Record(f"cmd{n}", [], "ok", 0))
    assert audit_log.stat().st_mode & 0o777 == 0o600
    assert audit_log.parent.stat().st_mode & 0o777 == 0o700
    assert audit.verify_local() == []
    assert [r["command"] for r in audit.read_local()] == ["cmd0", "cmd1", "cmd2", "cmd3"]
    lines = audit_log.read_bytes().splitlines(keepends=True)
    audit_log.write_bytes(lines[0] + lines[1].replace(b'"ok"', b'"failed"') + lines[2] + lines[3])
    assert audit.verify_local() == ["line 3: the line before it was changed, removed or inserted"]
    audit_log.write_bytes(lines[0] + lines[2] + lines[3])
    assert audit.verify_local() == ["line 2: the line before it was changed, removed or inserted"]
    audit_log.write_bytes(b"".join(lines) + b"not json\n")
    assert audit.verify_local() == [
        "line 5 is not a JSON record",
        "line 5: the line before it was changed, removed or inserted",
    ]


def test_a_planted_symlink_is_not_followed(audit_log: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    audit_log.parent.mkdir(parents=True)
    audit_log.symlink_to(victim)
    with pytest.raises(audit.SafeholdError, match="cannot open the audit log"):
        audit.append_local(audit.Record("backup", [], "ok", 0))
    assert victim.read_text() == "precious\n"


def test_secret_arguments_are_masked() -> None:
    args = ["--password-command", "echo hunter2", "restore", "retell", "--set", "retell.api_key=key_abc",
            "--password-command=pass show x", "--tag", "nightly"]  # fmt: skip
    assert audit.masked_args(args) == ["--password-command", "***", "restore", "retell", "--set",
                                       "retell.api_key=***", "--password-command=***", "--tag", "nightly"]  # fmt: skip


def test_every_command_kind_is_recorded_locally_and_in_the_repository(
    audit_log: Path, run, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    env = {audit.AUDIT_ENV: str(audit_log)}
    assert run("init", env=env, password=PASS).code == 0
    b = run("backup", str(data), "--tag", "t1", "--json", env=env, password=PASS)
    assert b.code == 0, b.err
    snap = b.json()["snapshot_id"]
    assert run("snapshots", env=env, password=PASS).code == 0
    assert run("check", env=env, password=PASS).code == 0
    assert run("restore", "latest", "--target", str(tmp_path / "r"), env=env, password=PASS).code == 0
    assert run("check", env=env, password="wrong passphrase").code == 12
    assert run("backup", str(tmp_path / "missing"), env=env, password=PASS).code == 3

    local = audit.read_local(audit_log)
    assert [(r["command"], r["result"]) for r in local] == [
        ("init", "ok"),
        ("backup", "ok"),
        ("snapshots", "ok"),
        ("check", "ok"),
        ("restore", "ok"),
        ("check", "failed"),
        ("backup", "partial"),
    ]
    backup = local[1]
    assert backup["snapshot_ids"] == [snap] and backup["args"] == [
        "backup",
        str(data),
        "--tag",
        "t1",
        "--json",
    ]
    assert backup["exit_code"] == 0 and backup["user"] and backup["host"] and backup["duration"] > 0
    assert local[5]["exit_code"] == 12 and "no key" in local[5]["error"]
    assert audit.verify_local(audit_log) == []

    shown = run("log", "--json", env=env, password=None)
    assert shown.code == 0 and [r["command"] for r in shown.json()] == [r["command"] for r in local]
    in_repo = run("log", "--repository", "--json", env=env, password=PASS)
    assert in_repo.code == 0, in_repo.err
    # the repository keeps the operations that opened it with the key and could change it or its data
    assert [(r["command"], r["result"]) for r in in_repo.json()] == [
        ("init", "ok"),
        ("backup", "ok"),
        ("check", "ok"),
        ("restore", "ok"),
        ("backup", "partial"),
    ]
    assert in_repo.json()[1]["snapshot_ids"] == [snap]
    text = run("log", "--since", "1h", env=env, password=None).out
    assert "backup" in text and snap[:8] in text and "record(s)" in text
    assert run("log", "--since", "soon", env=env, password=None).code == 2

    for raw in [audit_log.read_text(), json.dumps(in_repo.json())]:
        assert PASS not in raw
    files = os.listdir(tmp_path / "repo" / "audit")
    assert len(files) == 5 and all(
        PASS.encode() not in (tmp_path / "repo" / "audit" / f).read_bytes() for f in files
    )


def test_log_verify_reports_tampering(audit_log: Path, run) -> None:
    env = {audit.AUDIT_ENV: str(audit_log)}
    for _ in range(3):
        run("snapshots", env=env, password=None)
    assert run("log", "--verify", env=env, password=None).code == 0
    lines = audit_log.read_text().splitlines(keepends=True)
    audit_log.write_text(lines[0] + lines[2])
    r = run("log", "--verify", env=env, password=None)
    assert r.code == 1 and "line 2: the line before it was changed" in r.err
