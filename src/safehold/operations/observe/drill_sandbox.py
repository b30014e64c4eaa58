"""A drill's sandbox: its folder ``<drill.sandbox>/drill-<id>`` (mode 0700) with a marker naming the drill's
process (pid and start time, host), the sessions of the programs the drill starts (registered in the
sandbox, so that what a killed drill's programs left running can be ended), and the clean-up of one sandbox:
what it registered goes through each kind's ``cleanup_scratch``, then the folder. Which sandboxes are left
over is decided by :func:`safehold.operations.observe.drill.cleanup_leftovers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safehold.errors import SafeholdError, UsageError
from safehold.sources import registry
from safehold.sources.verify import REGISTRY, Sandbox, registered

MARKER = ".safehold-drill.json"
PREFIX = "drill-"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); None if unknown."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def alive(pid: int, started: object = None) -> bool:
    """Whether the drill that wrote a marker still runs: its pid exists and, when the marker recorded the
    process's start time, it is the same process (a pid reused by another process is not the drill)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start(pid)
    return not (isinstance(started, str) and now is not None and now != started)


#: The registry entries of the programs a drill started (``proc.ON_START``): their sessions.
PROGRAM = "program"


def note_programs(root: Path) -> Callable[[int], None]:
    """A ``proc.ON_START`` hook that registers the session of each program the drill (the calling thread)
    starts in the sandbox at ``root``; programs other threads start are not the drill's. It runs right
    after the program started: a drill killed before the line is written (a few milliseconds) leaves no
    record of that session, so what the program itself started by then is not ended by the clean-up (the
    program dies with the drill)."""
    sandbox = Sandbox(root=root)
    drill = threading.current_thread()

    def note(pid: int) -> None:
        if threading.current_thread() is not drill:
            return
        with contextlib.suppress(OSError):  # the program runs anyway; it dies with the drill (pdeathsig)
            sandbox.register(PROGRAM, {"sid": pid, "start": process_start(pid)})

    return note


def end_sessions(programs: list[dict[str, Any]]) -> list[str]:
    """SIGKILL what is left of a killed drill's program sessions (the programs died with the drill, a
    shell's children may not have). A session id cannot be reused while a process still has it; when a
    session's leader still runs it must be the program that was started (same start time)."""
    wanted: set[int] = set()
    for res in programs:
        with contextlib.suppress(ValueError, TypeError):
            sid, start = int(res.get("sid", 0)), res.get("start")
            leader = process_start(sid)
            if sid > 1 and not (leader is not None and isinstance(start, str) and leader != start):
                wanted.add(sid)  # (a leader with another start time: the pid names another process)
    if not wanted:
        return []
    ended: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) in wanted:  # state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)
                ended[int(fields[3])] = ended.get(int(fields[3]), 0) + 1
    return [f"ended {n} program(s) left running in session {sid}" for sid, n in sorted(ended.items())]


def clean_dir(path: Path) -> list[str]:
    """Remove what the drill in ``path`` registered (through each kind), then the folder itself; when a
    resource could not be removed the folder stays, with its registry, so the next drill or ``drill
    --cleanup`` tries again (messages beginning "could not" say so)."""
    done: list[str] = []
    failed = False
    resources = registered(path)
    done += end_sessions([r for r in resources if r["kind"] == PROGRAM])  # first: no client loading a dump
    for res in [r for r in resources if r["kind"] != PROGRAM]:
        try:
            done.append(registry.source_class(res["kind"]).cleanup_scratch(res))
        except (SafeholdError, OSError, ValueError, KeyError) as exc:
            failed = True
            msg = exc.message if isinstance(exc, SafeholdError) else str(exc)
            done.append(f"could not clean {res.get('kind')} resource: {msg} (left for the next drill)")
    if not failed:
        shutil.rmtree(path, ignore_errors=True)
        return done
    for entry in os.listdir(path):  # the restored files go anyway; the marker and the registry stay
        if entry not in (MARKER, REGISTRY):
            full = path / entry
            if stat.S_ISDIR(os.lstat(full).st_mode):
                shutil.rmtree(full, ignore_errors=True)
            else:
                full.unlink(missing_ok=True)
    return done


def make_sandbox(base: Path, drill_id: str) -> Path:
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not stat.S_ISDIR(os.lstat(base).st_mode):
        raise UsageError(f"the drill sandbox folder {base} is not a folder")
    path = base / f"{PREFIX}{drill_id}"
    path.mkdir(mode=0o700)
    marker = {
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "host": socket.gethostname(),
        "started": time.time(),
    }
    (path / MARKER).write_text(json.dumps(marker))
    return path
