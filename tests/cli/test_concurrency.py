"""Two backups into one repository at the same time both succeed and both restore."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

from tests.helpers.fixtures import PASSWORD, SAFEHOLD
from tests.helpers.treecompare import compare_trees


def test_two_concurrent_backups(tmp_path: Path, run, repo_path: Path) -> None:
    run("init")
    srcs = []
    for i in range(2):
        s = tmp_path / f"host{i}"
        rng = random.Random(i)
        for d in range(5):
            (s / f"d{d}").mkdir(parents=True)
            for f in range(50):
                (s / f"d{d}" / f"{f}.dat").write_bytes(rng.randbytes(rng.randint(10, 50_000)))
        (s / "shared.bin").write_bytes(random.Random(5).randbytes(8 << 20))  # same in both: dedup race
        srcs.append(s)
    env = dict(os.environ, SAFEHOLD_REPOSITORY=str(repo_path), SAFEHOLD_PASSWORD=PASSWORD)
    procs = [
        subprocess.Popen(
            [*SAFEHOLD, "backup", str(s), "--json", "--host", f"host{i}"],
            env=env | {"SAFEHOLD_CACHE_DIR": str(tmp_path / f"cache{i}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, s in enumerate(srcs)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    for out, err, code in results:
        assert code == 0, err
    ids = [json.loads(out)["snapshot_id"] for out, _e, _c in results]
    assert run("check", "--read-data").code == 0
    for i, snap in enumerate(ids):
        target = tmp_path / f"t{i}"
        r = run("restore", snap, "--target", str(target), "--verify")
        assert r.code == 0, r.err
        assert compare_trees(srcs[i], target / str(srcs[i]).lstrip("/"), check_owner=False) == []
