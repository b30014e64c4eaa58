"""``prune`` and ``forget --prune``: what is freed, what is kept, and when prune refuses."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from tests.helpers.fixtures import PASSWORD


def files(root: Path, names: range, size: int = 20_000, seed: int = 0) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in names:
        (root / f"f{i:04d}").write_bytes(os.urandom(size) if seed == 0 else bytes([seed]) * size)


def listing(repo_path: Path) -> dict[str, int]:
    """The repository's files and sizes (not audit/: every command appends its record there)."""
    return {
        str(p.relative_to(repo_path)): p.stat().st_size
        for p in repo_path.rglob("*")
        if p.is_file() and p.relative_to(repo_path).parts[0] != "audit"
    }


def snapshot_ids(run: Any) -> list[str]:
    return [s["id"] for s in run("snapshots", "--json").json()]


def restore_equals(run: Any, tmp_path: Path, snap: str, data: Path, name: str) -> None:
    out = tmp_path / name
    r = run("restore", snap, "--target", str(out))
    assert r.code == 0, r.err
    restored = out / str(data).lstrip("/")
    got = {p.name: p.read_bytes() for p in restored.iterdir()}
    want = {p.name: p.read_bytes() for p in data.iterdir()}
    assert got == want


def test_forget_prune_repacks_and_keeps_every_remaining_snapshot(
    tmp_path: Path, run: Any, repo_path: Path
) -> None:
    data = tmp_path / "data"
    files(data, range(300))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    for i in range(0, 300, 2):  # half the files go: their blobs share packs with the rest
        (data / f"f{i:04d}").unlink()
    assert run("backup", str(data)).code == 0
    before = sum(listing(repo_path).values())
    r = run("forget", "--keep-last", "1", "--prune", "--max-unused", "0%", "--json")
    assert r.code == 0, r.err
    out = r.json()["prune"]
    assert out["packs_repack"] >= 1 and out["packs_written"] >= 1
    assert out["blobs_removed"] >= 150
    assert out["size_after"] < out["size_before"]
    assert sum(listing(repo_path).values()) < before - 150 * 20_000 * 0.9
    r = run("check", "--read-data")
    assert r.code == 0, r.out + r.err
    assert "not in any index" not in r.out
    restore_equals(run, tmp_path, "latest", data, "out")
    # a second prune finds nothing to do
    r = run("prune", "--max-unused", "0%", "--json")
    assert r.code == 0 and r.json()["packs_delete"] == 0 and r.json()["packs_repack"] == 0


def test_max_unused_tolerates_some_waste(tmp_path: Path, run: Any) -> None:
    data = tmp_path / "data"
    files(data, range(200))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    for i in range(0, 200, 10):
        (data / f"f{i:04d}").unlink()
    assert run("backup", str(data)).code == 0
    assert run("forget", "--keep-last", "1").code == 0
    plan = run("prune", "-n", "--max-unused", "50%", "--json").json()
    assert plan["packs_repack"] == 0 and plan["bytes_unused"] > 0
    plan = run("prune", "-n", "--max-unused", "0%", "--json").json()
    assert plan["packs_repack"] >= 1
    plan = run("prune", "-n", "--max-unused", "0%", "--max-repack-size", "1K", "--json").json()
    assert plan["packs_repack"] == 0  # over the repack budget


def test_dry_run_changes_nothing(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    files(data, range(50))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    files(data, range(50), seed=7)
    assert run("backup", str(data)).code == 0
    assert run("forget", "--keep-last", "1").code == 0
    before = listing(repo_path)
    r = run("prune", "-n")
    assert r.code == 0, r.err
    assert "dry run: nothing was changed" in r.out and "delete 2 pack(s) with no used blob" in r.out
    assert listing(repo_path) == before


def _unindexed_leftover(tmp_path: Path, run: Any, repo_path: Path) -> set[str]:
    """Packs that no index names and no snapshot needs (as a backup killed before its index leaves)."""
    data = tmp_path / "data"
    files(data, range(20))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    index_before = set(os.listdir(repo_path / "index"))
    packs_before = set(listing(repo_path))
    files(data, range(20), seed=3)
    assert run("backup", str(data)).code == 0
    new = sorted(snapshot_ids(run))
    newest = run("snapshots", "--json").json()[-1]["id"]
    assert newest in new
    for name in set(os.listdir(repo_path / "index")) - index_before:
        (repo_path / "index" / name).unlink()
    (repo_path / "snapshots" / newest).unlink()
    return {p for p in set(listing(repo_path)) - packs_before if p.startswith("data/")}


def test_unindexed_packs_wait_for_the_grace_period(tmp_path: Path, run: Any, repo_path: Path) -> None:
    leftovers = _unindexed_leftover(tmp_path, run, repo_path)
    assert leftovers
    r = run("check")
    assert r.code == 0 and "not in any index" in r.out
    r = run("prune", "--json")
    assert r.code == 0, r.err
    assert r.json()["packs_unindexed_young"] == len(leftovers)
    assert leftovers <= set(listing(repo_path))  # a backup in progress might still need them
    old = time.time() - 7200
    for p in leftovers:
        os.utime(repo_path / p, (old, old))
    r = run("prune", "--json")
    assert r.code == 0 and r.json()["packs_unindexed_delete"] == len(leftovers)
    assert not leftovers & set(listing(repo_path))
    r = run("check", "--read-data")
    assert r.code == 0 and "not in any index" not in r.out


def test_prune_refuses_when_the_index_is_incomplete(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    files(data, range(20))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    for name in os.listdir(repo_path / "index"):
        (repo_path / "index" / name).unlink()
    before = listing(repo_path)
    r = run("prune")
    assert r.code == 1
    assert "prune stopped before deleting anything" in r.err and "is not in the index" in r.err
    assert "repair index" in r.err and "Traceback" not in r.err
    assert listing(repo_path) == before


def test_prune_refuses_a_damaged_index_file_or_snapshot(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    files(data, range(20))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    idx = next((repo_path / "index").iterdir())
    good = idx.read_bytes()
    idx.write_bytes(good[:-3] + b"zzz")
    r = run("prune")
    assert r.code == 1 and "repair index" in r.err
    idx.write_bytes(good)
    snap = next((repo_path / "snapshots").iterdir())
    snap.write_bytes(snap.read_bytes()[:10])
    before = listing(repo_path)
    r = run("prune")
    assert r.code == 1 and "snapshot file(s) cannot be read" in r.err
    assert listing(repo_path) == before


def test_prune_waits_for_or_refuses_a_running_backup(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    files(data, range(5))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = repo.lock(exclusive=False, operation="backup")
    try:
        r = run("prune")
        assert r.code == 11 and "locked" in r.err
        started = time.monotonic()
        r = run("--lock-wait", "2s", "prune")
        assert r.code == 11 and time.monotonic() - started >= 2
    finally:
        lock.release()
    assert run("--lock-wait", "2s", "prune").code == 0


def test_prune_removes_stale_locks(
    tmp_path: Path, run: Any, repo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    files(data, range(5))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = repo.lock(exclusive=False, operation="backup")
    lock._stop.set()  # its holder "died": the lease is not refreshed any more
    lock.info.pid = 2**22 + 12345  # no such process on this host: stale
    lock._write()
    r = run("prune", "--json")
    assert r.code == 0, r.err
    assert len(r.json()["stale_locks_removed"]) == 1
    assert not list((repo_path / "locks").iterdir())
    with pytest.raises(Exception, match="removed"):
        lock.confirm()  # the paused writer finds out before it commits anything


def test_bad_options(tmp_path: Path, run: Any) -> None:
    assert run("init").code == 0
    for args in (
        ["--max-unused", "5"],
        ["--max-unused", "120%"],
        ["--max-repack-size", "lots"],
        ["--pack-grace", "-1h"],
    ):
        r = run("prune", *args)
        assert r.code == 2, (args, r.err)
        assert "Traceback" not in r.err


def test_a_prune_whose_lock_is_removed_stops_before_deleting(
    tmp_path: Path, run: Any, repo_path: Path
) -> None:
    from safehold.backends.base import FileType, Handle
    from safehold.engine.check.checker import Checker
    from safehold.engine.prune.retention import Policy
    from safehold.errors import LockLost
    from safehold.operations.maintenance.forget import forget
    from safehold.operations.maintenance.prune import PruneOptions, prune

    data = tmp_path / "data"
    files(data, range(100))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    files(data, range(100), seed=9)
    assert run("backup", str(data)).code == 0

    class Unlocker(LocalBackend):
        """An operator runs 'unlock --remove-all' while prune writes its new index."""

        def save(self, h: Handle, data: bytes | memoryview) -> None:  # type: ignore[override]
            super().save(h, data)
            if h.type is FileType.INDEX:
                for fi in self.list(FileType.LOCK):
                    self.remove(Handle(FileType.LOCK, fi.name))

    repo = Repository.open(Unlocker(str(repo_path)), PASSWORD)
    forget(repo, policy=Policy(last=1), config=None)
    packs = {p for p in listing(repo_path) if p.startswith("data/")}
    index = set(os.listdir(repo_path / "index"))
    with pytest.raises(LockLost):
        prune(repo, PruneOptions(max_unused=0.0))
    assert packs <= set(listing(repo_path))  # not one pack deleted
    assert index <= set(os.listdir(repo_path / "index"))  # nor an old index file
    fresh = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    assert Checker(fresh).run(read_data=True).ok


def test_old_temporary_files_are_reported_by_check_and_removed_by_prune(
    tmp_path: Path, run: Any, repo_path: Path
) -> None:
    data = tmp_path / "data"
    files(data, range(5))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    sub = next(p for p in (repo_path / "data").iterdir() if p.is_dir())
    old_spool = repo_path / "data" / ".tmp-spool-data-0123abcd"
    old_save = sub / ".tmp-deadbeef-0011223344556677"
    young = repo_path / "index" / ".tmp-cafe-8899aabbccddeeff"
    for p in (old_spool, old_save, young):
        p.write_bytes(b"half a file")
    two_days_ago = time.time() - 2 * 86400
    for p in (old_spool, old_save):
        os.utime(p, (two_days_ago, two_days_ago))
    r = run("check")
    assert r.code == 0 and "2 temporary file(s) left by interrupted writes" in r.out
    r = run("prune", "-n", "--json")
    assert r.json()["temporary_files"] == 2 and old_spool.exists()
    r = run("prune", "--json")
    assert r.code == 0 and r.json()["temporary_files"] == 2
    assert not old_spool.exists() and not old_save.exists() and young.exists()
    backend = LocalBackend(str(repo_path))
    for hostile in ("../outside/.tmp-x", "/etc/.tmp-passwd", "data/not-temporary"):
        with pytest.raises(ValueError):
            backend.remove_leftover(hostile)


def test_forget_prune_dry_run_plans_as_if_forgotten(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = tmp_path / "data"
    files(data, range(30))
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    files(data, range(30), seed=4)
    assert run("backup", str(data)).code == 0
    before = listing(repo_path)
    r = run("forget", "--keep-last", "1", "--prune", "-n", "--json")
    assert r.code == 0, r.err
    assert r.json()["prune"]["packs_delete"] >= 1 and r.json()["prune"]["dry_run"]
    assert listing(repo_path) == before
