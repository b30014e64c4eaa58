"""SIGKILL a real backup at random points: the repository stays consistent and nothing completed is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.conftest import PASSWORD, SAFEHOLD

#: CI runs 20 trials; ``make test-slow`` (``-m slow``) the 200-trial soak. SAFEHOLD_KILL_TRIALS overrides both.
TRIALS = int(os.environ.get("SAFEHOLD_KILL_TRIALS", "20"))
SOAK_TRIALS = int(os.environ.get("SAFEHOLD_KILL_TRIALS", "200"))


def _make_source(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for d in range(8):
        sub = root / f"dir{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(60):
            (sub / f"f{f}.bin").write_bytes(rng.randbytes(rng.randint(0, 30_000)))
    (root / "large.bin").write_bytes(rng.randbytes(40 << 20))


def _env(repo: Path, cache: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        SAFEHOLD_REPOSITORY=str(repo),
        SAFEHOLD_PASSWORD=PASSWORD,
        SAFEHOLD_CACHE_DIR=str(cache),
        SAFEHOLD_LOCK_LEASE="30",
    )
    return e


def _sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAFEHOLD, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.mark.parametrize("trials", [TRIALS, pytest.param(SOAK_TRIALS, marks=pytest.mark.slow)])
def test_sigkill_during_backup(tmp_path: Path, trials: int) -> None:
    src = tmp_path / "src"
    _make_source(src, 1)
    env = _env(tmp_path / "repo", tmp_path / "cache")
    assert _sh(env, "init").returncode == 0
    done = _sh(env, "backup", str(src), "--json")
    assert done.returncode == 0, done.stderr
    completed = {done.stdout and __import__("json").loads(done.stdout)["snapshot_id"]}
    # time a full backup of changed data to spread kill points over its whole duration
    t0 = time.monotonic()
    _make_source(src, 2)
    r = _sh(env, "backup", str(src), "--json", "--no-cache")
    assert r.returncode == 0
    completed.add(__import__("json").loads(r.stdout)["snapshot_id"])
    duration = time.monotonic() - t0
    rng = random.Random(99)
    for trial in range(trials):
        _make_source(src / "changing", 100 + trial)
        p = subprocess.Popen(
            [*SAFEHOLD, "backup", str(src), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(rng.uniform(0.05, max(0.1, duration)))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        out, _err = p.communicate()
        if p.returncode == 0:
            completed.add(__import__("json").loads(out)["snapshot_id"])
    # the killed processes' locks are stale (dead PIDs on this host); check works without unlock
    chk = _sh(env, "check", "--read-data")
    assert chk.returncode == 0, chk.stdout + chk.stderr
    final = _sh(env, "backup", str(src), "--json")
    assert final.returncode == 0, final.stderr
    snaps = {s["id"] for s in __import__("json").loads(_sh(env, "snapshots", "--json").stdout)}
    assert completed <= snaps
    target = tmp_path / "restored"
    r = _sh(env, "restore", "latest", "--target", str(target), "--verify")
    assert r.returncode == 0, r.stderr
    assert (target / str(src).lstrip("/") / "large.bin").read_bytes() == (src / "large.bin").read_bytes()
