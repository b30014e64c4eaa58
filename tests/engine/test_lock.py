"""Locks as leases, driven by a fake clock: a removed or replaced lock is lost, never re-created, and every
writer stops before it commits (in-process for each writer path, and a real backup process whose lock an
operator removes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.memory import MemoryBackend
from safehold.engine.format import lock as lockmod
from safehold.engine.format.repository import Repository
from safehold.errors import EXIT_LOCK_LOST, LockLost
from safehold.operations.backup.paths import backup_session, commit


class FakeClock:
    """Wall and monotonic time that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def lock_files(b: MemoryBackend) -> list[str]:
    return [fi.name for fi in b.list(FileType.LOCK)]


@pytest.fixture
def repo() -> Repository:
    return Repository.init(MemoryBackend(), "pw")


def test_refresh_extends_the_lease_by_the_clock(repo: Repository) -> None:
    clock = FakeClock()
    lock = repo.lock(exclusive=False, operation="backup", clock=clock)
    for _ in range(5):  # five leases long, refreshed every third of one
        clock.advance(lock.lease / 3)
        lock.refresh()
        lock.check()
    info = lockmod.read_locks(repo.backend, repo.keys.lock, lockmod.SessionCache(repo.keys.lock))
    assert [i.refreshed for i in info] == [clock.now] and not info[0].stale(clock.now)
    lock.release()
    assert lock_files(repo.backend) == []  # type: ignore[arg-type]


def test_removed_lock_is_lost_and_never_written_again(repo: Repository) -> None:
    clock = FakeClock()
    lock = repo.lock(exclusive=False, operation="backup", clock=clock)
    repo.backend.remove(lock.handle)  # unlock --remove-all, or an operator
    clock.advance(lock.lease / 3)
    lock.refresh()
    assert lock_files(repo.backend) == []  # type: ignore[arg-type]
    with pytest.raises(LockLost, match="was removed") as exc:
        lock.check()
    assert exc.value.exit_code == EXIT_LOCK_LOST == 13
    clock.advance(lock.lease / 3)
    lock.refresh()
    lock.release()
    assert lock_files(repo.backend) == []  # type: ignore[arg-type]


def test_replaced_lock_is_lost_and_left_alone(repo: Repository) -> None:
    clock = FakeClock()
    lock = repo.lock(exclusive=False, operation="backup", clock=clock)
    other = b"someone else's lock bytes"
    repo.backend.save(lock.handle, other)
    clock.advance(lock.lease / 3)
    lock.refresh()
    with pytest.raises(LockLost, match="replaced"):
        lock.check()
    lock.release()
    assert repo.backend.load(lock.handle) == other  # not ours to remove


def test_check_reads_the_lock_back_before_the_next_refresh(repo: Repository) -> None:
    clock = FakeClock()
    lock = repo.lock(exclusive=False, operation="backup", clock=clock)
    repo.backend.remove(lock.handle)
    lock.check()  # read back less than VERIFY_EVERY ago: the cheap check does not see it yet
    clock.advance(lockmod.VERIFY_EVERY)
    with pytest.raises(LockLost, match="removed"):
        lock.check()
    lock.release()

    lock = repo.lock(exclusive=False, operation="backup", clock=clock)
    repo.backend.remove(lock.handle)
    with pytest.raises(LockLost, match="removed"):
        lock.confirm()  # confirm always reads back (index files, snapshots)
    lock.release()


def test_failing_refreshes_lose_the_lock_after_one_lease(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    lock = repo.lock(exclusive=False, operation="backup", clock=clock)

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("storage gone")

    monkeypatch.setattr(repo.backend, "save", broken)
    clock.advance(lock.lease / 3)
    lock.refresh()
    lock.check()  # one failed refresh is no loss yet
    clock.advance(lock.lease)
    lock.refresh()
    with pytest.raises(LockLost, match=r"lease expired.*storage gone"):
        lock.check()
    monkeypatch.undo()
    lock.release()


def test_backup_stops_before_its_index_and_snapshot(repo: Repository) -> None:
    """backup (and component backups: the same commit): packs may be written, but after the lock was
    removed neither an index file nor the snapshot is."""
    backend = repo.backend
    with pytest.raises(LockLost), backup_session(repo, use_cache=False) as session:
        session.root.add(session.archiver.bytes_node(b"f", os.urandom(100_000), 0o600))
        for name in lock_files(backend):  # type: ignore[arg-type]
            backend.remove(Handle(FileType.LOCK, name))
        commit(session, {"time": "2024-01-01T00:00:00+00:00", "paths": [], "hostname": "h"})
    assert list(backend.list(FileType.SNAPSHOT)) == [] and list(backend.list(FileType.INDEX)) == []


def test_copy_stops_before_the_snapshot(tmp_path: Path) -> None:
    from safehold.operations.maintenance.copy import copy_snapshots

    src = Repository.init(MemoryBackend(), "pw")
    with backup_session(src, use_cache=False) as session:
        session.root.add(session.archiver.bytes_node(b"f", os.urandom(50_000), 0o600))
        commit(session, {"time": "2024-01-01T00:00:00+00:00", "paths": [], "hostname": "h"})
    dst_backend = MemoryBackend()
    dst = Repository.init(dst_backend, "pw")
    real_save = dst_backend.save

    def save(handle: Handle, data: Any, *a: Any, **k: Any) -> None:
        real_save(handle, data, *a, **k)
        if handle.type is FileType.DATA:  # the operator strikes while the first pack lands
            for name in lock_files(dst_backend):
                dst_backend.remove(Handle(FileType.LOCK, name))

    dst_backend.save = save  # type: ignore[method-assign]
    with pytest.raises(LockLost):
        copy_snapshots(src, dst)
    assert list(dst_backend.list(FileType.SNAPSHOT)) == [] and list(dst_backend.list(FileType.INDEX)) == []


def test_removing_the_lock_during_a_real_backup(tmp_path: Path, run: Any) -> None:
    """An operator runs 'unlock --remove-all' while a (long) profile backup runs: the backup fails with
    a clear message and exit 13, writes no snapshot, and the repository checks clean afterwards."""
    go = tmp_path / "go"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "f.txt").write_bytes(os.urandom(300_000))
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
[components.app]
kind = "files"
paths = ["{tmp_path / "app"}"]
[components.slow]
kind = "command"
command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.05; done; echo done"]
filename = "out.txt"
[profiles.nightly]
components = ["app", "slow"]
''')
    env = {"SAFEHOLD_CONFIG": str(cfg), "SAFEHOLD_REPOSITORY": ""}
    assert run("init", env=env).code == 0
    import subprocess

    from tests.helpers.fixtures import PASSWORD, SAFEHOLD

    proc = subprocess.Popen(
        [*SAFEHOLD, "backup", "--profile", "nightly"],
        env={**os.environ, **env, "SAFEHOLD_PASSWORD": PASSWORD, "SAFEHOLD_CACHE_DIR": str(tmp_path / "c")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    locks = tmp_path / "repo" / "locks"
    deadline = time.monotonic() + 60
    while not (locks.is_dir() and os.listdir(locks)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(locks), "the backup never took its lock"
    assert run("unlock", "--remove-all", "--json", env=env).json()["removed"]
    go.touch()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 13, err
    assert "error: the lock file locks/" in err and "was removed" in err and "Nothing was committed" in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path / "repo" / "snapshots") == [] and os.listdir(locks) == []
    r = run("check", "--read-data", env=env)
    assert r.code == 0, r.err + r.out


def test_a_short_or_damaged_read_back_is_read_again() -> None:
    from safehold.backends.faulty import Fault, FaultKind, FaultyBackend

    repo = Repository.init(MemoryBackend(), "pw")
    for kind in (FaultKind.PARTIAL, FaultKind.CORRUPT):
        lock = repo.lock(exclusive=False, operation="backup", clock=FakeClock())
        faulty = FaultyBackend(repo.backend, [Fault(kind, ops=frozenset({"load"}))])
        lock.backend = faulty
        lock.confirm()  # the first read-back is short or damaged, the next one is right
        assert [i.kind for i in faulty.injected] == [kind]
        lock.release()
