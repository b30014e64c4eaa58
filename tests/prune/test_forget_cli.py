"""``forget``, ``pin``, ``unpin`` and ``backup --forget`` through the real CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from tests.helpers.fixtures import PASSWORD

DAYS = [f"2026-11-{d:02d}T10:00:00+01:00" for d in (1, 2, 3, 10, 20)]


def _history(tmp_path: Path, run: Any, times: list[str] = DAYS, extra: tuple[str, ...] = ()) -> list[str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    ids = []
    assert run("init").code == 0
    for t in times:
        (data / "f").write_text(t)
        r = run("backup", str(data), "--time", t, "--json", *extra)
        assert r.code == 0, r.err
        ids.append(r.json()["snapshot_id"])
    return ids


def _ids(run: Any) -> set[str]:
    return {s["id"] for s in run("snapshots", "--json").json()}


def test_dry_run_plans_and_removes_nothing_then_forget_removes(tmp_path: Path, run: Any) -> None:
    ids = _history(tmp_path, run)
    r = run("forget", "--keep-daily", "2", "-n")
    assert r.code == 0, r.err
    assert f"{ids[4][:8]}  2026-11-20T10:00:00  keep: newest complete snapshot, daily #1" in r.out
    assert f"{ids[0][:8]}  2026-11-01T10:00:00  remove" in r.out
    assert "would remove 3 snapshot(s)" in r.out
    assert _ids(run) == set(ids)
    r = run("forget", "--keep-daily", "2", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert set(out["removed"]) == set(ids[:3])
    verdicts = {s["id"]: s["verdict"] for g in out["groups"] for s in g["snapshots"]}
    assert verdicts[ids[3]] == "keep: daily #2"
    assert _ids(run) == set(ids[3:])


def test_times_count_in_the_recorded_zone(tmp_path: Path, run: Any) -> None:
    # 00:30 on the 2nd in UTC+2 is the 1st in UTC: two days in their own zone, one in UTC
    ids = _history(tmp_path, run, ["2026-11-01T20:00:00+02:00", "2026-11-02T00:30:00+02:00"])
    out = run("forget", "--keep-daily", "2", "-n", "--json").json()
    assert out["remove"] == []
    assert {s["time"] for s in run("snapshots", "--json").json()} == {
        "2026-11-01T20:00:00.000000+02:00",
        "2026-11-02T00:30:00.000000+02:00",
    }
    assert len(ids) == 2


def test_pin_protects_and_the_old_id_still_names_it(tmp_path: Path, run: Any) -> None:
    ids = _history(tmp_path, run)
    r = run("pin", ids[0][:8])
    assert r.code == 0, r.err
    assert run("pin", ids[0][:8]).out.strip().endswith("is already pinned")
    r = run("forget", ids[0][:8])
    assert r.code == 2 and "is pinned" in r.err and "unpin" in r.err
    r = run("forget", "--keep-last", "1", "--json")
    assert r.code == 0, r.err
    left = run("snapshots", "--json").json()
    assert len(left) == 2
    pinned = next(s for s in left if s["pinned"])
    assert pinned["original"] == ids[0] and pinned["time"].startswith("2026-11-01T10:00:00")
    assert run("ls", ids[0][:8]).code == 0  # the id the backup printed still names it
    assert "(pinned)" in run("snapshots").out
    assert run("unpin", ids[0]).code == 0
    assert run("forget", "--keep-last", "1").code == 0
    assert len(_ids(run)) == 1


def test_forget_named_ids_and_unknown_ids(tmp_path: Path, run: Any) -> None:
    ids = _history(tmp_path, run)
    r = run("forget", ids[1][:8], "deadbeef")
    assert r.code == 1 and "deadbeef" in r.err  # nothing removed unless every id is understood
    assert len(_ids(run)) == 5
    assert run("forget", ids[1][:8], ids[2]).code == 0
    assert _ids(run) == {ids[0], ids[3], ids[4]}
    assert run("forget", ids[0][:8], "--keep-last", "1").code == 2


def test_usage_errors(tmp_path: Path, run: Any) -> None:
    _history(tmp_path, run, DAYS[:1])
    r = run("forget", env={"SAFEHOLD_CONFIG": str(tmp_path / "none.toml")})
    assert r.code == 2 and "error:" in r.err and "Traceback" not in r.err
    assert run("forget", "--keep-within", "soon").code == 2
    assert run("forget", "--keep-daily", "-1").code == 2
    assert run("forget", "--keep-daily", "0").code == 2  # a policy that keeps nothing by any rule
    assert run("forget", "--keep-last", "1", "--group-by", "host,colour").code == 2
    assert run("--lock-wait", "a while", "forget", "--keep-last", "1").code == 2


def test_locked_repository_and_lock_wait(tmp_path: Path, run: Any, repo_path: Path) -> None:
    _history(tmp_path, run, DAYS[:2])
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = repo.lock(exclusive=False, operation="backup")
    try:
        r = run("forget", "--keep-last", "1")
        assert r.code == 11 and "locked" in r.err
        r = run("--lock-wait", "1s", "forget", "--keep-last", "1")
        assert r.code == 11
    finally:
        lock.release()
    assert run("--lock-wait", "5s", "forget", "--keep-last", "1").code == 0


def test_damaged_and_hostile_snapshot_files_are_reported_and_left(
    tmp_path: Path, run: Any, repo_path: Path
) -> None:
    ids = _history(tmp_path, run, DAYS[:3])
    backend = LocalBackend(str(repo_path))
    path = repo_path / "snapshots" / ids[0]
    path.write_bytes(path.read_bytes()[:-5] + b"XXXXX")  # damaged: no longer matches its name
    repo = Repository.open(backend, PASSWORD)
    good = repo.load_snapshot(ids[1])
    # a snapshot written with the key whose 'pinned' is not a boolean (a crafted file): damage, not a pin
    raw = json.loads(good.to_bytes())
    raw["pinned"] = "yes"
    hostile = repo.save_file(FileType.SNAPSHOT, json.dumps(raw).encode())
    r = run("forget", "--keep-last", "1")
    assert r.code == 0, r.err
    assert r.err.count("damaged snapshot file left alone") == 2
    assert backend.stat(Handle(FileType.SNAPSHOT, ids[0])).size > 0
    assert backend.stat(Handle(FileType.SNAPSHOT, hostile)).size > 0
    assert ids[2] in _snapshot_names(repo_path) and ids[1] not in _snapshot_names(repo_path)
    assert dataclasses.asdict(good)["pinned"] is False


def _snapshot_names(repo_path: Path) -> set[str]:
    return {p.name for p in (repo_path / "snapshots").iterdir()}


def _config(tmp_path: Path, retention: str) -> Path:
    data = tmp_path / "app"
    data.mkdir(exist_ok=True)
    (data / "index.php").write_text("<?php")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"

[components.app]
kind = "files"
paths = ["{data}"]

[profiles.daily]
components = ["app"]
{retention}

[profiles.keepall]
components = ["app"]

[defaults]
profile = "daily"
safety_retention = {{ last = 1 }}
''')
    return cfg


def test_config_retention_and_backup_forget(tmp_path: Path, run: Any) -> None:
    cfg = _config(tmp_path, "retention = { last = 2 }")
    env = {"SAFEHOLD_CONFIG": str(cfg), "SAFEHOLD_REPOSITORY": ""}
    assert run("init", env=env).code == 0
    for _ in range(2):
        assert run("backup", "--profile", "keepall", env=env).code == 0
    for _ in range(3):
        r = run("backup", "--profile", "daily", "--forget", "--json", env=env)
        assert r.code == 0, r.err
    assert "forget" in r.json()
    snaps = run("snapshots", "--json", env=env).json()
    assert sorted(s["profile"] for s in snaps) == ["daily", "daily", "keepall", "keepall"]
    plan = run("forget", "-n", "--json", env=env).json()
    why = {g["group"]["profile"]: g["why"] for g in plan["groups"]}
    assert "has none" in why["keepall"] and why["daily"] == "profile daily's retention"
    assert run("backup", str(tmp_path / "app"), "--forget", env=env).code == 2


def test_safety_snapshots_follow_their_own_policy(tmp_path: Path, run: Any) -> None:
    cfg = _config(tmp_path, "retention = { last = 1 }")
    env = {"SAFEHOLD_CONFIG": str(cfg), "SAFEHOLD_REPOSITORY": ""}
    assert run("init", env=env).code == 0
    data = tmp_path / "app"
    for t in DAYS[:3]:
        assert run("backup", str(data), "--tag", "safety", "--time", t, env=env).code == 0
        assert run("backup", "--profile", "daily", env=env).code == 0
    out = run("forget", "--json", env=env).json()
    groups = {tuple(sorted(g["group"].items())): g for g in out["groups"]}
    safety = next(g for k, g in groups.items() if ("kind", "safety") in k)
    assert safety["why"].startswith("safety snapshots") and safety["policy"] == "last 1"
    assert sum(s["keep"] for s in safety["snapshots"]) == 1
    # a command-line policy for regular backups leaves safety snapshots to their own policy
    out = run("forget", "--keep-last", "1", "-n", "--json", env=env).json()
    safety = next(g for g in out["groups"] if g["group"].get("kind") == "safety")
    assert safety["policy"] == "last 1" and safety["why"].startswith("safety")
