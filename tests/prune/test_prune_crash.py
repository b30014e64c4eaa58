"""SIGKILL of prune at every kind of point: ``check --read-data`` passes, every snapshot restores as it was
backed up, and the next prune completes.

The kill points are exact: ``killprune.py`` kills prune right before its N-th save or removal, for N over
the whole run (a new pack, an index file, the removal of an old index file or pack). CI runs 20 of them
(spread over the run); ``make test-slow`` runs every point and then 200 kills at random times.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.local import LocalBackend
from safehold.engine.check.checker import Checker
from safehold.engine.format.repository import Repository
from tests.helpers.fixtures import PASSWORD
from tests.prune.test_prune import files

TRIALS = int(os.environ.get("SAFEHOLD_KILL_TRIALS", "20"))
SOAK_TRIALS = int(os.environ.get("SAFEHOLD_KILL_TRIALS", "200"))
KILLER = Path(__file__).with_name("killprune.py")


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def history(tmp_path: Path, run: Any, repo_path: Path) -> tuple[Path, dict[str, dict[str, str]], Path]:
    """A repository whose prune deletes, repacks and rewrites: four backups of changing files, two forgotten.
    Returns (repository, snapshot id -> file digests, source folder)."""
    data = tmp_path / "data"
    assert run("init").code == 0
    expected: dict[str, dict[str, str]] = {}
    rng = random.Random(5)
    for step in range(4):
        files(data, range(step * 40, step * 40 + 120), size=8_000)
        for p in sorted(data.iterdir()):
            if rng.random() < 0.3:
                p.unlink()
        (data / "big").write_bytes(rng.randbytes(3_000_000))
        r = run("backup", str(data), "--json")
        assert r.code == 0, r.err
        expected[r.json()["snapshot_id"]] = _digest_tree(data)
    ids = list(expected)
    assert run("forget", ids[0], ids[2]).code == 0
    for gone in (ids[0], ids[2]):
        del expected[gone]
    return repo_path, expected, data


def _verify(
    run: Any, repo: Path, expected: dict[str, dict[str, str]], data: Path, tmp: Path, restore: bool
) -> None:
    opened = Repository.open(LocalBackend(str(repo)), PASSWORD)
    result = Checker(opened).run(read_data=True)
    assert result.ok, result.errors
    assert {s.id for s in opened.snapshots()} == set(expected)
    if restore:
        for sid, digests in expected.items():
            out = tmp / f"restore-{sid[:8]}-{time.monotonic_ns()}"
            r = run("--repo", str(repo), "restore", sid, "--target", str(out))
            assert r.code == 0, r.err
            assert _digest_tree(out / str(data).lstrip("/")) == digests
            shutil.rmtree(out)


def _prune_at(repo: Path, at: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAFEHOLD_PASSWORD=PASSWORD)
    return subprocess.run(
        [sys.executable, "-P", str(KILLER), str(repo), str(at)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("trials", [TRIALS, pytest.param(SOAK_TRIALS, marks=pytest.mark.slow)])
def test_sigkill_of_prune_at_each_step(
    history: tuple[Path, dict[str, dict[str, str]], Path], run: Any, tmp_path: Path, trials: int
) -> None:
    base, expected, data = history
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    full = _prune_at(probe, 0)
    assert full.returncode == 0, full.stderr
    changes = json.loads(full.stdout)["changes"]
    assert changes >= 6  # new packs, index files, removals: enough points to be worth sweeping
    _verify(run, probe, expected, data, tmp_path, restore=True)
    points = list(range(1, changes + 1))
    if trials < len(points):
        step = len(points) / trials
        points = sorted({points[int(k * step)] for k in range(trials)})
    else:
        points = points + [random.randint(1, changes) for _ in range(trials - len(points))]
    killed_count = 0
    for k, at in enumerate(points):
        trial = tmp_path / f"trial-{k}"
        shutil.copytree(base, trial)
        killed = _prune_at(trial, at)
        if killed.returncode == 0:
            # how many packs a repack writes varies a little (blobs go to one of two open packs at
            # random), so a point near the end may lie past this run's last change: it then completed
            assert json.loads(killed.stdout)["changes"] < at, (at, killed.stdout)
        else:
            assert killed.returncode == -signal.SIGKILL, (at, killed.stderr)
            killed_count += 1
        _verify(run, trial, expected, data, tmp_path, restore=k % 5 == 0)
        again = run("--repo", str(trial), "prune", "--max-unused", "0%", "--pack-grace", "0", "--json")
        assert again.code == 0, (at, again.err)
        _verify(run, trial, expected, data, tmp_path, restore=k % 5 == 0)
        shutil.rmtree(trial)
    assert killed_count >= len(points) * 0.8, (killed_count, len(points))


@pytest.mark.slow
def test_sigkill_of_prune_at_random_times(
    history: tuple[Path, dict[str, dict[str, str]], Path], run: Any, tmp_path: Path
) -> None:
    base, expected, data = history
    env = dict(os.environ, SAFEHOLD_PASSWORD=PASSWORD, SAFEHOLD_REPOSITORY="")
    rng = random.Random(11)
    for k in range(SOAK_TRIALS):
        trial = tmp_path / f"trial-{k}"
        shutil.copytree(base, trial)
        p = subprocess.Popen(
            [sys.executable, "-P", str(KILLER), str(trial), "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        _verify(run, trial, expected, data, tmp_path, restore=k % 20 == 0)
        assert run("--repo", str(trial), "prune", "--pack-grace", "0").code == 0
        _verify(run, trial, expected, data, tmp_path, restore=False)
        shutil.rmtree(trial)
