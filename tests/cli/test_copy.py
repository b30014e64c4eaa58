"""Copies between repositories: different passphrases, only missing data, idempotent, resumable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.fixtures import PASSWORD, SAFEHOLD
from tests.helpers.treecompare import compare_trees

OTHER = "another passphrase entirely"


def _src(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for d in range(4):
        (root / f"d{d}").mkdir(parents=True, exist_ok=True)
        for f in range(30):
            (root / f"d{d}" / f"{f}.bin").write_bytes(rng.randbytes(rng.randint(10, 40_000)))
    (root / "big.bin").write_bytes(rng.randbytes(30 << 20))


def _repo_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and "locks" not in f.parts)


@pytest.mark.parametrize("shared_params", [True, False])
def test_copy_round_trip_idempotent(tmp_path: Path, run, shared_params: bool) -> None:
    src = tmp_path / "src"
    _src(src, 1)
    run("init")
    first = run("backup", str(src), "--json").json()["snapshot_id"]
    _src(src / "more", 2)
    second = run("backup", str(src), "--json").json()["snapshot_id"]
    off = tmp_path / "offsite"
    env = {"SAFEHOLD_OTHER_PASSWORD": PASSWORD}
    init_args = ["--copy-chunker-params-from", str(tmp_path / "repo")] if shared_params else []
    r = run("--repo", str(off), "init", *init_args, password=OTHER, env=env)
    assert r.code == 0, r.err
    r = run("copy", "--to", str(off), "--json", env={"SAFEHOLD_OTHER_PASSWORD": OTHER})
    assert r.code == 0, r.err
    res = r.json()
    assert sorted(res["copied"]) == sorted([first, second]) and res["blobs_copied"] > 0
    size = _repo_bytes(off)
    # idempotent: a second copy transfers nothing
    again = run("copy", "--to", str(off), "--json", env={"SAFEHOLD_OTHER_PASSWORD": OTHER}).json()
    assert again["copied"] == [] and again["blobs_copied"] == 0 and _repo_bytes(off) == size
    # the target is a first-class repository: check and restore with its own passphrase
    assert run("--repo", str(off), "check", "--read-data", password=OTHER).code == 0
    target = tmp_path / "restored"
    snaps = run("--repo", str(off), "snapshots", "--json", password=OTHER).json()
    assert {s["original"] for s in snaps} == {first, second}
    r = run("--repo", str(off), "restore", "latest", "--target", str(target), "--verify", password=OTHER)
    assert r.code == 0, r.err
    assert compare_trees(src, target / str(src).lstrip("/"), check_owner=False) == []
    # copying back with --from works the same way
    assert (
        run("copy", "--from", str(off), "--json", env={"SAFEHOLD_OTHER_PASSWORD": OTHER}).json()["copied"]
        == []
    )


def test_copy_killed_half_way_resumes_without_resending(tmp_path: Path, run) -> None:
    src = tmp_path / "src"
    _src(src, 3)
    # ~15 packs: the first index file (after INDEX_EVERY = 8 packs) leaves ~7 packs of work before the
    # copy ends, time enough to kill it there even on a loaded machine.
    (src / "big2.bin").write_bytes(os.urandom(200 << 20))
    run("init")
    run("backup", str(src))
    off = tmp_path / "offsite"
    run(
        "--repo",
        str(off),
        "init",
        "--copy-chunker-params-from",
        str(tmp_path / "repo"),
        password=OTHER,
        env={"SAFEHOLD_OTHER_PASSWORD": PASSWORD},
    )
    env = dict(
        os.environ,
        SAFEHOLD_REPOSITORY=str(tmp_path / "repo"),
        SAFEHOLD_PASSWORD=PASSWORD,
        SAFEHOLD_OTHER_PASSWORD=OTHER,
    )
    p = subprocess.Popen(
        [*SAFEHOLD, "copy", "--to", str(off)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60

    def indexed() -> int:  # complete index files only (temporary names start with a dot)
        return sum(1 for f in (off / "index").iterdir() if not f.name.startswith("."))

    while time.monotonic() < deadline and indexed() == 0 and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL, "the copy finished before it could be interrupted"
    assert not run("--repo", str(off), "snapshots", "--json", password=OTHER).json()
    arrived = _repo_bytes(off)
    assert arrived > 20 << 20
    r = run("copy", "--to", str(off), "--json", env={"SAFEHOLD_OTHER_PASSWORD": OTHER})
    assert r.code == 0, r.err
    total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    # the rerun sent clearly less than everything: what was indexed before the kill was not resent
    sent = r.json()["bytes_copied"]
    assert 0 < sent < total - (15 << 20), (sent, total)
    assert run("--repo", str(off), "check", "--read-data", password=OTHER).code == 0
