"""A snapshot's time is its writer's claim: 'latest' skips snapshots dated in the future of the reader's
clock (beyond a tolerance), 'snapshots' shows the storage's write time beside the claim and warns, and
backup warns about a future --time. restore all never picks such a snapshot by itself."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.base import FileType
from safehold.backends.local import LocalBackend
from safehold.backends.memory import MemoryBackend
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import FUTURE_TOLERANCE, Snapshot, newest
from safehold.errors import IntegrityError, NotFound
from tests.helpers.fixtures import PASSWORD


def snap(repo: Repository, when: datetime, **kw: Any) -> Snapshot:
    s = Snapshot(time=when.isoformat(), tree="00" * 32, paths=["/x"], hostname="h", **kw)
    repo.save_snapshot(s)
    return s


def test_latest_skips_snapshots_dated_in_the_future() -> None:
    repo = Repository.init(MemoryBackend(), PASSWORD)
    now = datetime.now(UTC)
    old = snap(repo, now - timedelta(hours=1))
    far = snap(repo, now + timedelta(days=3650))  # a mistyped --time, or a hostile co-writer
    assert repo.find_snapshot("latest").id == old.id
    near = snap(repo, now + FUTURE_TOLERANCE / 2)  # another host whose clock runs a little ahead
    assert repo.find_snapshot("latest").id == near.id
    assert repo.find_snapshot(far.id[:8]).id == far.id  # named by its id, it is still there
    # the same rule with a filter (restore all's component snapshots use it)
    assert repo.latest(lambda s: s.id != near.id).id == old.id
    # on a reader whose clock reached the far snapshot's time, it is simply the newest
    best, skipped = newest(repo.iter_snapshots(), now=now + timedelta(days=3651))
    assert best is not None and best.id == far.id and skipped == []


def test_only_future_snapshots_is_a_clear_error() -> None:
    repo = Repository.init(MemoryBackend(), PASSWORD)
    far = snap(repo, datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(
        NotFound, match=f"only snapshots dated in the future of this machine's clock: {far.short_id}"
    ):
        repo.find_snapshot("latest")


def test_snapshot_with_a_time_that_does_not_parse_is_damage() -> None:
    for bad in ("garbage", 12345, None):
        raw = json.dumps({"version": 1, "time": bad, "tree": "00", "paths": [], "hostname": "h"}).encode()
        with pytest.raises(IntegrityError, match="malformed"):
            Snapshot.from_bytes(raw, "ab" * 32)


def test_written_time_comes_from_the_storage(repo_path: Path) -> None:
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    before = datetime.now(UTC).timestamp()
    s = snap(repo, datetime(2001, 1, 1, tzinfo=UTC))
    (listed,) = list(repo.iter_snapshots())
    assert listed.id == s.id and listed.written is not None and abs(listed.written - before) < 5
    assert b"written" not in repo.load_file(FileType.SNAPSHOT, s.id)  # not a field of the file
    file = repo_path / "snapshots" / s.id
    future = datetime.now(UTC).timestamp() + 86400
    os.utime(file, (future, future))  # storage time is only as good as the storage: shown, never trusted
    (listed,) = list(repo.iter_snapshots())
    assert listed.written == pytest.approx(future)


def test_cli_shows_write_time_warns_and_backup_warns(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x")
    assert run("init").code == 0
    r = run("backup", str(data), "--time", "2000-01-01T00:00:00+00:00")
    assert r.code == 0 and "in the future" not in r.err
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    r = run("backup", str(data), "--time", future, "--json")
    assert r.code == 0
    assert f"warning: --time {future} is 2 d 0 h in the future" in r.err or "1 d 23 h in the future" in r.err
    assert "'latest' will not pick this snapshot until then" in r.err
    hostile = r.json()["snapshot_id"]
    r = run("snapshots")
    assert "Written" in r.out.splitlines()[0] and "(FUTURE: never latest)" in r.out
    assert f"warning: snapshot {hostile[:8]} is dated {future[:19]}" in r.err and "'latest' skips it" in r.err
    listed = {s["id"]: s for s in run("snapshots", "--json").json()}
    assert listed[hostile]["future"] is True and listed[hostile]["written"] is not None
    written = datetime.fromisoformat(listed[hostile]["written"])
    assert abs((written - datetime.now(UTC)).total_seconds()) < 300
    ls = run("ls", "latest", "--json")
    assert ls.code == 0
    r = run("cat", "snapshot", "latest")
    assert json.loads(r.out)["time"].startswith("2000-01-01")  # latest is the past one


def test_restore_all_never_picks_a_future_snapshot(tmp_path: Path, run: Any) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.php").write_text("<?php")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
[components.app]
kind = "files"
paths = ["{app}"]
[profiles.nightly]
components = ["app"]
''')
    env = {"SAFEHOLD_CONFIG": str(cfg), "SAFEHOLD_REPOSITORY": ""}
    assert run("init", env=env).code == 0
    r = run("backup", "--profile", "nightly", "--json", env=env)
    assert r.code == 0, r.err
    good = r.json()["snapshot_id"]
    # a co-writer (any passphrase holder) adds a component snapshot dated in 2099
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), PASSWORD)
    legit = repo.find_snapshot(good)
    hostile = dataclasses.replace(legit, time="2099-01-01T00:00:00+00:00", id="")
    repo.save_snapshot(hostile)
    plan = run("restore", "all", "--dry-run", "--json", env=env)
    assert plan.code == 0, plan.err
    text = plan.out + plan.err
    assert good[:8] in text and hostile.id[:8] not in text
