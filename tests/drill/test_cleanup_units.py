"""Cleanup of what a killed drill left: its scratch redis-server (only that process), sandboxes of live
or foreign drills left alone, hostile registry lines harmless."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from safehold.operations.observe.drill import MARKER, cleanup_leftovers
from safehold.sources.redis.verify import _start, _wait, stop
from safehold.sources.verify import Sandbox


def _box(base: Path, name: str, pid: int, host: str | None = None, **extra: object) -> Path:
    box = base / name
    box.mkdir(parents=True)
    marker = {"pid": pid, "host": host or socket.gethostname(), "started": 0, **extra}
    (box / MARKER).write_text(json.dumps(marker))
    return box


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_killed_drills_redis_server_is_stopped(tmp_path: Path) -> None:
    import redis

    box = _box(tmp_path, "drill-0001", _dead_pid())
    folder = box / "redis"
    folder.mkdir()
    proc, port = _start(folder, Sandbox(root=box), "redis")
    try:
        _wait(proc, redis.Redis(port=port), folder)
        done = cleanup_leftovers(tmp_path)
        assert len(done) == 1 and f"stopped scratch redis-server {proc.pid}" in done[0], done
        assert proc.wait(10) is not None
        assert not box.exists()
    finally:
        stop(proc)


def test_live_foreign_and_hostile_sandboxes(tmp_path: Path) -> None:
    live = _box(tmp_path, "drill-live", os.getpid())
    foreign = _box(tmp_path, "drill-other", _dead_pid(), host="another-host")
    odd = tmp_path / "not-a-drill"
    odd.mkdir()
    (odd / MARKER).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    hostile = _box(tmp_path, "drill-hostile", _dead_pid())
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        # a registry line naming a process that is no redis-server, and a database that is no scratch one
        (hostile / ".safehold-drill-resources.jsonl").write_text(
            json.dumps({"kind": "redis", "pid": sleeper.pid, "port": 1, "dir": "/"}) + "\n"
            + json.dumps({"kind": "mysql", "database": "mysql", "host": "127.0.0.1"}) + "\n"
            + "not json\n"
        )  # fmt: skip
        done = cleanup_leftovers(tmp_path)
        assert len(done) == 1 and "drill-hostile" in done[0]
        assert "left process" in done[0] and "left 'mysql' alone" in done[0], done
        time.sleep(0.1)
        assert sleeper.poll() is None
        assert live.exists() and foreign.exists() and odd.exists() and not hostile.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_reused_pid_is_not_the_drill(tmp_path: Path) -> None:
    """A marker names its process by pid and start time: a live process with that pid that started at
    another time (the pid was reused) is not the drill, and its sandbox is a killed drill's."""
    start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    same = _box(tmp_path, "drill-same", os.getpid(), pid_start=start)
    reused = _box(tmp_path, "drill-reused", os.getpid(), pid_start=str(int(start) + 1))
    done = cleanup_leftovers(tmp_path)
    assert len(done) == 1 and "drill-reused" in done[0] and "killed drill" in done[0], done
    assert same.exists() and not reused.exists()
