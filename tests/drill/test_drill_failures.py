"""What a drill must catch, and what it must leave behind (nothing): a dump that loads fewer rows than
recorded, a dump that does not load, a component that failed at backup time, a blob that does not
decrypt; a drill interrupted with Ctrl-C, and one killed with SIGKILL (cleaned by 'drill --cleanup' and by
the next drill)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from safehold.sources.verify import registered
from tests.drill.conftest import DrillServer
from tests.e2e.conftest import PASSPHRASE
from tests.helpers.cli import SAFEHOLD
from tests.sources.conftest import mysql_root


def _client(d: DrillServer, name: str, body: str) -> Path:
    """A client tool for the 'database' component's restores (the snapshot's configuration names it)."""
    path = d.s.tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)

    def use(data: dict[str, Any]) -> None:
        data["components"]["database"]["client_tool"] = str(path)

    d.edit_config(use)
    return path


def _steps(r: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in r.json()["components"]}


def test_a_dump_that_loads_fewer_rows_or_not_at_all_fails_the_drill(drill_server: DrillServer) -> None:
    d = drill_server
    # MariaDB's dump writes one row per line: the client drops the first row it is given
    _client(
        d,
        "drop-a-row",
        'awk \'BEGIN{d=0} {if (!d && substr($0,1,1)=="(") {d=1; next} print}\' | exec mariadb "$@"\n',
    )
    d.backup("quick")
    r = d.drill("--profile", "quick")
    assert r.code == 1, r
    steps = _steps(r)
    assert not steps["database"]["ok"] and "restore verification failed" in steps["database"]["message"], (
        steps
    )
    assert "rows" in steps["database"]["message"]
    assert all(steps[n]["ok"] for n in ("app", "config", "storage"))
    assert "error: drill failed: database" in r.err

    _client(
        d, "broken-client", "cat >/dev/null; echo 'ERROR 1064 (42000) at line 1: syntax error' >&2; exit 1\n"
    )
    d.backup("quick")
    r = d.drill("--profile", "quick")
    assert r.code == 1 and "ERROR 1064" in _steps(r)["database"]["message"], r
    # both failures are recorded: status breaches the RTO of the drilled profile
    d.edit_config(lambda data: data["drill"].update(profile="quick"))
    st = d.cli("--config", str(d.s.config), "--json", "status").json()
    assert any(o["name"] == "rto" and not o["ok"] and "failed" in o["message"] for o in st["objectives"]), st
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []


def test_a_component_that_failed_at_backup_time_fails_the_drill(drill_server: DrillServer) -> None:
    d = drill_server

    def broken(data: dict[str, Any]) -> None:
        data["components"]["report"] = {"kind": "command", "command": ["sh", "-c", "echo half; exit 3"]}
        data["profiles"]["quick"]["components"].append("report")

    d.edit_config(broken)
    run = d.backup("quick")
    assert run["partial"] is True
    r = d.drill("--profile", "quick")
    assert r.code == 1, r
    step = _steps(r)["report"]
    assert not step["ok"] and step["message"].startswith("missing: failed at backup time"), step


def test_a_blob_that_does_not_decrypt_fails_the_drill(drill_server: DrillServer) -> None:
    d = drill_server
    d.backup("quick")
    packs = sorted((d.s.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    biggest = packs[-1]
    data = bytearray(biggest.read_bytes())
    data[len(data) // 3] ^= 0x40
    biggest.chmod(0o600)
    biggest.write_bytes(bytes(data))
    r = d.drill("--profile", "quick")
    assert r.code == 1, r
    bad = [c for c in r.json()["components"] if not c["ok"]]
    assert bad and any(
        "damaged" in c["message"] or "authentic" in c["message"] or "decrypt" in c["message"] for c in bad
    ), bad
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []


def _as_in_a_terminal() -> None:
    """In the drill's process before it starts: SIGINT as in a terminal's foreground job. A test run started
    as a background job of a non-interactive shell (how whole-suite runs are often started) ignores SIGINT,
    every program it starts inherits that, and Python keeps an inherited "ignore": the "Ctrl-C" below would
    then never reach the drill (it ran on past the test's 60 s, its scratch database and process left to
    fail the next tests)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_drill(d: DrillServer, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(
        HOME=str(d.s.tmp / "home"),
        SAFEHOLD_PASSWORD=PASSPHRASE,
        SAFEHOLD_CACHE_DIR=str(d.s.tmp / "cache"),
        SAFEHOLD_AUDIT_LOG=str(d.s.tmp / "audit.jsonl"),  # never /var/log/safehold
    )
    return subprocess.Popen(
        [*SAFEHOLD, "--config", str(d.s.config), "drill", "--profile", "quick", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=_as_in_a_terminal,  # noqa: PLW1509 - one signal disposition, no lock taken
    )


def _wait_for_scratch_db(d: DrillServer, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for registry in d.sandbox.glob("drill-*/.safehold-drill-resources.jsonl"):
            lines = [json.loads(x) for x in registry.read_text().splitlines()]
            d.ids.update(str(x["database"]).split("_")[2] for x in lines if x["kind"] == "mysql")
            if any(x["kind"] == "mysql" for x in lines) and d.scratch_databases():
                return registry.parent
        time.sleep(0.05)
    raise AssertionError("the drill never created its scratch database")


def test_interrupted_and_killed_drills_leave_nothing_behind(drill_server: DrillServer) -> None:
    started: list[subprocess.Popen[str]] = []
    try:
        _interrupted_and_killed(drill_server, started)
    finally:  # a failure here must not leave a running drill to fail the next tests
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        drill_server.cli("--config", str(drill_server.s.config), "drill", "--cleanup", timeout=120)


def _interrupted_and_killed(d: DrillServer, started: list[subprocess.Popen[str]]) -> None:
    d.backup("quick")  # a good snapshot
    good = d.cli("--config", str(d.s.config), "--json", "snapshots").json()[-1]["id"]
    # the client tool writes its pid, and that of the program it starts in turn (its own child)
    pids, children = d.s.tmp / "client-pids", d.s.tmp / "client-children"
    _client(
        d, "slow-client", f'echo $$ >> {pids}; sleep 60 & echo $! >> {children}; wait $!; exec mariadb "$@"\n'
    )
    d.backup("quick")  # its restores take a minute: time to interrupt them
    for f in (pids, children):  # the backup's preflight ran the client tool too (--version): not the drills'
        f.unlink(missing_ok=True)

    # Ctrl-C: the drill cleans up on its way out
    proc = _start_drill(d)
    started.append(proc)
    _wait_for_scratch_db(d, proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == [], err

    # SIGKILL: nothing runs; 'drill --cleanup' finds the sandbox of the dead process and its scratch database
    proc = _start_drill(d)
    started.append(proc)
    box = _wait_for_scratch_db(d, proc)
    _wait_for_lines(children, len(_lines(children)) + 1)  # the client's own child runs
    _wait_for_program(box, int(_lines(pids)[-1]))  # and the drill has registered the client's session
    proc.kill()
    proc.communicate()
    _programs_ended(pids)  # the programs it started died with it
    assert box.exists() and d.scratch_databases() != []
    r = d.cli("--config", str(d.s.config), "drill", "--cleanup")
    assert (
        r.code == 0
        and "removed the sandbox of a killed drill" in r.out
        and "dropped scratch database" in r.out
        and "ended 1 program(s) left running in session" in r.out
    ), r
    _programs_ended(children)  # and what they started in turn is ended by the clean-up
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []

    # again, and this time the next drill cleans up first; a session still works in the killed drill's
    # scratch database and holds a lock there (as a killed drill's restore client would): the next drill
    # ends it instead of waiting for it
    proc = _start_drill(d)
    started.append(proc)
    _wait_for_scratch_db(d, proc)
    proc.kill()
    proc.communicate()
    _programs_ended(pids)
    (scratch,) = d.scratch_databases()
    with mysql_root(scratch) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE held (id INT)")
    holder = mysql_root(scratch)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT * FROM held")  # a metadata lock until the transaction ends
        r = d.drill("--profile", "quick", "--snapshot", good, timeout=120)
        assert r.code == 0, r
        (cleaned,) = [c for c in r.json()["cleaned_leftovers"] if "killed drill" in c]
        assert (
            f"dropped scratch database {scratch} (ended session {holder.thread_id()} of root@" in cleaned
        ), r
        with pytest.raises(pymysql.OperationalError), holder.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        with contextlib.suppress(pymysql.Error):
            holder.close()
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _wait_for_lines(path: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(_lines(path)) < n:
        assert time.monotonic() < deadline, f"{path} never had {n} lines"
        time.sleep(0.05)


def _wait_for_program(box: Path, pid: int) -> None:
    """The drill registers a program's session right after starting it; a loaded machine can run the
    client's first lines before that: a drill killed in between leaves no record of that session, which is
    the window this test is not about."""
    deadline = time.monotonic() + 60
    while not any(r.get("kind") == "program" and r.get("sid") == pid for r in registered(box)):
        assert time.monotonic() < deadline, f"the drill never registered the session of {pid}"
        time.sleep(0.05)


def _programs_ended(pids: Path) -> None:
    """Every program the drill started (the client tool wrote its pid) has ended (with a killed drill)."""
    started = [int(x) for x in pids.read_text().split()]
    assert started
    deadline = time.monotonic() + 10
    running = started
    while running and time.monotonic() < deadline:
        running = [p for p in started if _runs(p)]
        time.sleep(0.05)
    assert not running, f"still running after their drill: {_describe(running)}"


def _describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: {Path(f'/proc/{pid}/stat').read_text().strip()}")
        except OSError:
            out.append(f"{pid}: gone")
    return out


def _runs(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has ended


def test_a_step_that_hangs_is_stopped_at_the_step_timeout(drill_server: DrillServer) -> None:
    d = drill_server
    pids = d.s.tmp / "client-pids"
    _client(d, "hung-client", f"echo $$ >> {pids}; exec sleep 3600\n")  # never reads, never exits
    d.backup("quick")
    pids.unlink(missing_ok=True)  # the backup's preflight ran it too (--version): not the drill's
    d.edit_config(lambda data: data["drill"].update(step_timeout="5s"))
    t0 = time.monotonic()
    r = d.drill("--profile", "quick", timeout=180)
    took = time.monotonic() - t0
    assert r.code == 1, r
    steps = _steps(r)
    db = steps["database"]
    assert not db["ok"] and "was stopped after 5s ([drill] step_timeout), still running" in db["message"], db
    assert "raise [drill] step_timeout" in db["hint"], db
    assert steps["app"]["ok"] and steps["config"]["ok"] and steps["storage"]["ok"], steps  # the others ran
    assert 5 <= db["seconds"] < 60 and took < 150, (db, took)
    assert "error: drill failed: database" in r.err, r.err
    _programs_ended(pids)  # the stuck client was killed with its step
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []


def test_keep_leaves_the_sandbox_and_cleanup_removes_it(drill_server: DrillServer) -> None:
    d = drill_server
    d.backup("quick")
    r = d.drill("--profile", "quick", "--keep")
    assert r.code == 0, r
    kept = Path(r.json()["sandbox_kept"])
    assert kept.is_dir() and (kept / "app").is_dir() and len(d.scratch_databases()) == 1
    r = d.drill("--profile", "quick")  # another drill leaves a kept sandbox alone
    assert r.code == 0 and kept.is_dir()
    r = d.cli("--config", str(d.s.config), "drill", "--cleanup")
    assert r.code == 0 and "kept drill" in r.out, r
    assert not kept.exists() and d.scratch_databases() == []
