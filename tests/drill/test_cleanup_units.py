"""Cleanup of what a killed drill left: its scratch redis-server (only that process), sandboxes of live
or foreign drills left alone, hostile registry lines harmless."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from safehold.operations.observe.drill import cleanup_leftovers
from safehold.operations.observe.drill_sandbox import MARKER
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


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]


def _ended(p: subprocess.Popen[bytes]) -> bool:
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_a_killed_drills_program_sessions_are_ended_and_others_left_alone(tmp_path: Path) -> None:
    """A program session a killed drill registered: what still runs in it is ended (a shell's child that
    outlived the shell). Hostile or stale lines: a session whose leader runs but started at another time
    (the pid was reused), this process's own session, pid 1, garbage: nothing else is touched."""
    box = _box(tmp_path, "drill-progs", _dead_pid())
    own = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands for the drill's program
    reused = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a pid the drill once had
    try:
        lines = [
            {"kind": "program", "sid": own.pid, "start": _start_time(own.pid)},
            {"kind": "program", "sid": reused.pid, "start": str(int(_start_time(reused.pid)) - 1)},
            {"kind": "program", "sid": os.getsid(0), "start": "0"},
            {"kind": "program", "sid": 1},
            {"kind": "program", "sid": "x"},
        ]
        (box / ".safehold-drill-resources.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        done = cleanup_leftovers(tmp_path)
        assert len(done) == 1 and f"ended 1 program(s) left running in session {own.pid}" in done[0], done
        assert _ended(own) and reused.poll() is None and not box.exists()
    finally:
        for p in (own, reused):
            p.kill()
            p.wait()


def test_programs_die_with_safehold(tmp_path: Path) -> None:
    """proc.Running's programs get SIGKILL when safehold is killed (kill -9: no finally runs)."""
    code = (
        "import sys, time\n"
        "from safehold import proc\n"
        "r = proc.Running(['sleep', '60'])\n"
        "print(r.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert Path(f"/proc/{child}").exists()
        parent.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            break  # gone (reaped)
        if state == "Z":
            break  # ended, waiting to be reaped by whoever inherited it
        time.sleep(0.05)
    else:
        raise AssertionError(f"program {child} outlived the safehold that started it")
