"""Status against the objectives with an injected clock: met, each way of breaching, the figures, the
recorded results (hostile ones included) and the Prometheus textfile."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.config.loader import validate
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.operations.observe import results
from safehold.operations.observe.metrics import render, write_textfile
from safehold.operations.observe.results import Result
from safehold.operations.observe.status import compute_status

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TREE = "00" * 32
CONFIG: dict[str, Any] = {
    "version": 1,
    "repository": {"url": "/srv/backup"},
    "components": {"app": {"kind": "files", "paths": ["/srv/app"]}},
    "profiles": {"quick": {"components": ["app"]}, "full": {"components": ["app"]}},
    "defaults": {"profile": "quick"},
    "objectives": {"rpo": "24h", "rto": "1h"},
}


def config(**changes: Any) -> Any:
    data = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value}
    return validate(data, "test")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalBackend(str(tmp_path / "repo")), "pw")


def snap(repo: Repository, hours_ago: float, *, host: str = "web1", profile: str | None = "quick",
         partial: bool = False, total: int = 1000, added: int = 100, tags: list[str] | None = None) -> str:  # fmt: skip
    s = Snapshot(
        time=(NOW - dt.timedelta(hours=hours_ago)).isoformat(),
        tree=TREE,
        paths=[],
        hostname=host,
        profile=profile,
        partial=partial,
        tags=tags or [],
        summary={"bytes_total": total, "added_bytes_new_stored": added},
    )
    return repo.save_snapshot(s)


def drill(repo: Repository, days_ago: float, *, ok: bool = True, seconds: float = 600, host: str = "web1",
          profile: str = "quick") -> None:  # fmt: skip
    results.record(
        repo,
        Result(
            type="drill",
            time=(NOW - dt.timedelta(days=days_ago)).isoformat(),
            host="drillhost",
            snapshot_host=host,
            profile=profile,
            ok=ok,
            seconds=seconds,
            message="" if ok else "database: 41 rows in users, 42 recorded",
        ),
    )


def check(repo: Repository, days_ago: float, ok: bool = True) -> None:
    time = (NOW - dt.timedelta(days=days_ago)).isoformat()
    results.record(repo, Result(type="check", time=time, host="web1", ok=ok, seconds=3, message="structure"))


def objectives(
    repo: Repository, cfg: Any = None, hosts: list[str] | None = None
) -> dict[str, tuple[bool, str]]:
    st = compute_status(repo, cfg or config(), now=NOW, hosts=hosts or ["web1"])
    return {f"{o.name}:{o.profile or ''}": (o.ok, o.message) for o in st.objectives}


def test_every_objective_met(repo: Repository) -> None:
    snap(repo, 30)
    snap(repo, 3)
    drill(repo, 2)
    check(repo, 1)
    got = objectives(repo)
    assert got == {
        "rpo:quick": (
            True,
            f"newest complete snapshot {_newest(repo)[:8]} is 3h 0m old (within the RPO of 1d 0h)",
        ),
        "rto:quick": (True, "last drill passed 2d 0h ago in 10m (RTO 1h 0m)"),
        "check:": (True, "last check passed 1d 0h ago: structure"),
    }
    st = compute_status(repo, config(), now=NOW, hosts=["web1"])
    assert not st.breached and st.as_dict()["ok"] is True
    # 'full' has no RPO (not the default profile, none of its own) and no snapshots: not listed
    assert [(p.host, p.profile) for p in st.profiles] == [("web1", "quick")]


def _newest(repo: Repository) -> str:
    return max(repo.snapshots(), key=lambda s: s.time).id


def test_rpo_breached_with_partial_snapshots_since(repo: Repository) -> None:
    snap(repo, 30)
    snap(repo, 20, partial=True)
    snap(repo, 2, partial=True)
    snap(repo, 1, tags=["safety"])  # a restore's safety snapshot is no backup
    snap(repo, -5)  # dated in the future: not trusted as the newest
    drill(repo, 2)
    ok, msg = objectives(repo)["rpo:quick"]
    assert not ok and "is 1d 6h old (beyond the RPO of 1d 0h); 2 partial snapshot(s) since" in msg
    st = compute_status(repo, config(), now=NOW, hosts=["web1"])
    assert [o.name for o in st.breached] == ["rpo"]
    assert len(st.profiles[0].partial_since) == 2


def test_no_snapshot_at_all_is_a_breach(repo: Repository) -> None:
    got = objectives(repo)
    assert got["rpo:quick"] == (False, "no complete snapshot (RPO 1d 0h)")
    assert got["rto:quick"] == (False, "no drill recorded: the RTO is unproven (run 'safehold drill')")


@pytest.mark.parametrize(
    ("kwargs", "days_ago", "problem"),
    [
        ({"ok": False}, 2, "the last drill failed (database: 41 rows in users, 42 recorded)"),
        ({"seconds": 5400}, 2, "the last drill took 1h 30m, beyond the RTO of 1h 0m"),
        ({}, 40, "the last drill is 40d 0h old (due every 32d 0h)"),
    ],
)
def test_rto_breached(repo: Repository, kwargs: dict[str, Any], days_ago: float, problem: str) -> None:
    snap(repo, 3)
    drill(repo, days_ago, **kwargs)
    assert objectives(repo)["rto:quick"] == (False, problem)


def test_only_the_newest_drill_counts_and_the_schedule_sets_its_age(repo: Repository) -> None:
    snap(repo, 3)
    drill(repo, 10, ok=False)
    drill(repo, 9)
    assert objectives(repo)["rto:quick"][0] is True
    weekly = config(drill={"schedule": "weekly"})
    assert objectives(repo, weekly)["rto:quick"] == (False, "the last drill is 9d 0h old (due every 8d 0h)")
    assert objectives(repo, config(objectives={"drill_age": "10d"}))["rto:quick"][0] is True
    # drills of another host's snapshots or of another profile say nothing about these
    drill(repo, 1, host="web2")
    drill(repo, 1, profile="full")
    assert objectives(repo, weekly)["rto:quick"][0] is False


def test_profile_objectives_and_hosts(repo: Repository) -> None:
    snap(repo, 3)
    snap(repo, 24 * 6, profile="full")
    snap(repo, 24 * 30, host="old-server")  # a decommissioned host is listed, not measured
    drill(repo, 1)
    cfg = config(profiles={"quick": {"components": ["app"]}, "full": {"components": ["app"], "rpo": "7d"}})
    got = objectives(repo, cfg)
    assert set(got) == {"rpo:quick", "rpo:full", "rto:quick"}
    assert got["rpo:full"][0] is True
    st = compute_status(repo, cfg, now=NOW, hosts=["web1"])
    assert ("old-server", "quick") in [(p.host, p.profile) for p in st.profiles]
    assert not st.breached
    both = compute_status(repo, cfg, now=NOW, hosts=["web1", "old-server"])
    assert {(o.name, o.host) for o in both.breached} == {("rpo", "old-server"), ("rto", "old-server")}
    # no default profile: the RPO applies to every profile
    nodefault = validate({**CONFIG, "defaults": {}}, "test")
    assert {k for k, (ok, _) in objectives(repo, nodefault).items() if k.startswith("rpo")} == {
        "rpo:quick",
        "rpo:full",
    }


def test_a_failed_check_is_a_breach(repo: Repository) -> None:
    snap(repo, 3)
    drill(repo, 1)
    check(repo, 3, ok=True)
    check(repo, 1, ok=False)
    assert objectives(repo)["check:"] == (False, "last check FAILED 1d 0h ago: structure")


def test_repository_figures(repo: Repository) -> None:
    snap(repo, 24 * 40, total=10_000, added=4_000)
    snap(repo, 24 * 2, total=10_000, added=500)
    snap(repo, 3, total=12_000, added=700)
    r = compute_status(repo, config(), now=NOW, hosts=["web1"]).repository
    assert r.snapshots == 3 and r.logical_bytes == 32_000
    assert (r.added_30d_bytes, r.added_30d_backups) == (1200, 2)
    assert r.files >= 4 and r.size_bytes > 0  # config, key, snapshots (no data packs: ratio unknown)
    assert r.data_bytes == 0 and r.dedup_ratio is None


def test_hostile_and_damaged_results_are_skipped(repo: Repository) -> None:
    drill(repo, 1)
    # written with the key, but not a result: not trusted, reported, never fatal
    repo.save_file(FileType.RESULT, b'{"type": "drill", "time": "yesterday", "ok": true}')
    repo.save_file(FileType.RESULT, json.dumps({"type": "drill", "time": NOW.isoformat(), "host": "x" * 300,
                                                "ok": True, "seconds": 1}).encode())  # fmt: skip
    raw = repo.save_file(FileType.RESULT, b"{}")
    repo.backend.remove(Handle(FileType.RESULT, raw))
    repo.backend.save(Handle(FileType.RESULT, raw), b"garbage")  # damaged: its name is no longer its hash
    warnings: list[str] = []
    found = results.load(repo, warnings.append)
    assert [r.type for r in found] == ["drill"] and len(warnings) == 3
    assert any("does not match its name" in w for w in warnings)


def test_recording_keeps_the_newest_of_each_kind(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "KEEP", 3)
    for d in range(6):
        drill(repo, 10 - d)
    drill(repo, 1, profile="full")
    check(repo, 1)
    found = results.load(repo)
    kept = [r for r in found if r.type == "drill" and r.profile == "quick"]
    assert [round((NOW - r.started).days) for r in kept] == [7, 6, 5]
    assert len(found) == 5


def test_prometheus_textfile(repo: Repository, tmp_path: Path) -> None:
    snap(repo, 3)
    snap(repo, 3, host='evil"host\n{x="1"}')  # another host's name ends up in a label value
    drill(repo, 2)
    check(repo, 1)
    st = compute_status(repo, config(), now=NOW, hosts=["web1"])
    text = render(st)
    sample = re.compile(r'^[a-z_0-9]+(\{([a-z_]+="([^"\\\n]|\\["\\n])*",?)*\})? -?[0-9.e+]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    assert 'safehold_snapshot_last_complete_age_seconds{host="web1",profile="quick"} 10800' in text
    assert 'host="evil\\"host\\n{x=\\"1\\"}"' in text
    assert 'safehold_objective_met{objective="rto",host="web1",profile="quick"} 1' in text
    assert "safehold_check_last_success 1" in text
    path = tmp_path / "node" / "safehold.prom"
    path.parent.mkdir()
    write_textfile(str(path), st)
    assert path.read_text() == text and (path.stat().st_mode & 0o777) == 0o644


def test_stale_locks_are_listed(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock whose process is gone (on this host) is reported; a live one is not."""
    lock = repo.lock(exclusive=False, operation="backup")
    try:
        assert compute_status(repo, config(), now=NOW, hosts=["web1"]).stale_locks == []
        monkeypatch.setattr("safehold.engine.format.lock._pid_alive", lambda _pid: False)
        (stale,) = compute_status(repo, config(), now=NOW, hosts=["web1"]).stale_locks
        assert stale["operation"] == "backup" and stale["stale"] is True and stale["exclusive"] is False
    finally:
        monkeypatch.undo()
        lock.release()
