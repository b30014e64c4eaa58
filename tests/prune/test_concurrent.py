"""Backups and forget+prune against one repository at the same time (local disk and the S3 server).

Three backup loops (each its own host name and source folder, changed before every backup) and a
forget+prune loop run as separate processes with ``--lock-wait``: prune holds an exclusive lock, the
backups wait for it (and it for them). Afterwards ``check --read-data`` passes and every snapshot that is
left restores byte-identical to what its backup read. CI runs a few rounds; ``make test-slow`` a soak.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.backends.conftest import random_bucket
from tests.helpers.cli import SAFEHOLD
from tests.helpers.fixtures import PASSWORD

ROUNDS = int(os.environ.get("SAFEHOLD_SOAK_ROUNDS", "3"))
SOAK_ROUNDS = int(os.environ.get("SAFEHOLD_SOAK_ROUNDS", "25"))


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _mutate(src: Path, rng: random.Random) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for k in range(rng.randint(5, 30)):
        (src / f"f{rng.randint(0, 60)}").write_bytes(rng.randbytes(rng.randint(1, 40_000)))
    for p in list(src.iterdir()):
        if rng.random() < 0.2:
            p.unlink()
    if rng.random() < 0.5:
        (src / "large").write_bytes(rng.randbytes(2_500_000))


def _soak(tmp_path: Path, env: dict[str, str], rounds: int) -> None:
    def sh(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SAFEHOLD, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    assert sh("init").returncode == 0
    expected: dict[str, dict[str, str]] = {}
    problems: list[str] = []

    def backups(host: int) -> None:
        rng = random.Random(host)
        src = tmp_path / f"src{host}"
        for _ in range(rounds):
            _mutate(src, rng)
            before = _digests(src)
            r = sh("--lock-wait", "10m", "backup", str(src), "--host", f"host{host}", "--json", "--no-cache")
            if r.returncode != 0:
                problems.append(f"backup host{host}: exit {r.returncode}: {r.stderr}")
                return
            expected[json.loads(r.stdout)["snapshot_id"]] = before

    def pruner() -> None:
        for _ in range(rounds):
            r = sh(
                "--lock-wait",
                "10m",
                "forget",
                "--keep-last",
                "2",
                "--prune",
                "--max-unused",
                "0%",
                "--pack-grace",
                "0",
            )
            if r.returncode != 0:
                problems.append(f"forget --prune: exit {r.returncode}: {r.stderr}")
                return

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(backups, h) for h in range(3)] + [pool.submit(pruner)]
        for f in futures:
            f.result()
    assert not problems, problems
    r = sh("check", "--read-data")
    assert r.returncode == 0, r.stdout + r.stderr
    left = [s["id"] for s in json.loads(sh("snapshots", "--json").stdout)]
    assert len(left) >= 3 and set(left) <= set(expected)
    for sid in left:
        out = tmp_path / f"out-{sid[:8]}"
        r = sh("restore", sid, "--target", str(out))
        assert r.returncode == 0, r.stderr
        host_src = next(p for p in (out.rglob("src*")) if p.is_dir())
        assert _digests(host_src) == expected[sid], sid
        shutil.rmtree(out)


def _local_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SAFEHOLD_REPOSITORY=str(tmp_path / "repo"),
        SAFEHOLD_PASSWORD=PASSWORD,
        SAFEHOLD_CACHE_DIR=str(tmp_path / "cache"),
    )
    return env


def _s3_env(tmp_path: Path, s3_server: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEHOLD_", "AWS_"))}
    env.update(
        SAFEHOLD_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        SAFEHOLD_REPOSITORY=f"s3://{random_bucket()}/repo",
        SAFEHOLD_PASSWORD=PASSWORD,
        SAFEHOLD_CACHE_DIR=str(tmp_path / "cache"),
        SAFEHOLD_BOOTSTRAP="0",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE="/nonexistent/safehold-test-aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/safehold-test-aws-credentials",
        SAFEHOLD_S3_ENDPOINT=s3_server,
        SAFEHOLD_S3_REGION="us-east-1",
        SAFEHOLD_S3_PATH_STYLE="1",
    )
    return env


@pytest.mark.parametrize("rounds", [ROUNDS, pytest.param(SOAK_ROUNDS, marks=pytest.mark.slow)])
def test_backups_and_prune_at_once_on_local_disk(tmp_path: Path, rounds: int) -> None:
    _soak(tmp_path, _local_env(tmp_path), rounds)


@pytest.mark.s3
@pytest.mark.parametrize("rounds", [2, pytest.param(SOAK_ROUNDS, marks=pytest.mark.slow)])
def test_backups_and_prune_at_once_on_s3(tmp_path: Path, s3_server: str, rounds: int) -> None:
    _soak(tmp_path, _s3_env(tmp_path, s3_server), rounds)
