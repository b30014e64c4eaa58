"""A check's result is written without pydantic (``operations/observe/checkrecord.py``) and read back by
``results.load`` like any other; the oldest of its kind beyond KEEP are thinned out, and hostile or damaged
result files in the repository neither stop the recording nor get removed by it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.engine.check.checker import CheckResult
from safehold.engine.format.repository import Repository
from safehold.operations.observe import checkrecord, results
from tests.helpers.fixtures import PASSWORD


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def repo(repo_path: Path) -> Repository:
    return Repository.init(LocalBackend(str(repo_path)), PASSWORD)


def _record(repo: Repository, started: dt.datetime, errors: list[str] | None = None) -> list[str]:
    warnings: list[str] = []
    outcome = CheckResult(errors=errors or [], snapshots=2, packs=5, packs_read=5)
    checkrecord.record_check(repo, outcome, started, read_data=True, subset=None, warn=warnings.append)
    return warnings


def test_a_check_result_reads_back_as_a_result(repo: Repository) -> None:
    started = checkrecord.now_utc() - dt.timedelta(seconds=3)
    assert _record(repo, started, ["pack 0123: damaged"]) == []
    (r,) = results.load(repo)
    assert (r.type, r.ok, r.profile, r.version) == ("check", False, None, results.RESULT_VERSION)
    assert r.time == started.isoformat(timespec="seconds") and 2.9 < r.seconds < 60
    assert r.message == "read-data: 1 error(s), first: pack 0123: damaged"
    assert r.details == {"mode": "read-data", "snapshots": 2, "packs": 5, "packs_read": 5}


def test_the_oldest_checks_are_thinned_and_hostile_results_left_alone(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkrecord, "KEEP", 3)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    hostile = [
        b"garbage",
        b"[1, 2]",
        b'{"type": "check", "time": "yesterday"}',
        b'{"type": "check", "host": null, "profile": null, "time": {"a": 1}}',
        json.dumps({"type": "check", "host": None, "profile": None, "time": "2020-01-01T00:00:00"}).encode(),
    ]
    odd = [repo.save_file(FileType.RESULT, raw) for raw in hostile]
    damaged = repo.save_file(FileType.RESULT, b"{}")
    repo.backend.remove(Handle(FileType.RESULT, damaged))
    repo.backend.save(Handle(FileType.RESULT, damaged), b"not sealed")
    for day in range(6):
        assert _record(repo, base + dt.timedelta(days=day)) == []
    kept = [r for r in results.load(repo) if r.type == "check"]
    assert [r.started.day for r in kept] == [4, 5, 6]
    names = {fi.name for fi in repo.backend.list(FileType.RESULT)}
    assert set(odd) | {damaged} <= names


def test_check_imports_no_pydantic(repo_path: Path, repo: Repository, tmp_path: Path) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('pydantic' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['safehold', '--repo', sys.argv[1], 'check', '--read-data']\n"
        "from safehold.cli import boot\n"
        "boot.entry()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(
        SAFEHOLD_PASSWORD=PASSWORD, SAFEHOLD_AUDIT_LOG=os.devnull, SAFEHOLD_CONFIG="", HOME=str(tmp_path)
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo_path)], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr
    assert [r.type for r in results.load(repo)] == ["check"]
