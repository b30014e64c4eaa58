"""Bare metal: a fresh virtualenv with no package index installs safehold from a repository's
``bootstrap/`` and restores a snapshot with it, byte for byte.

It builds the real wheels (cached for the session) and installs ~45 of them, so it runs once in CI and is
bounded in time; it needs no network (pip runs with --no-index and an environment without PIP_* settings).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safehold.cli.main import main

PASS = "bare metal passphrase"


@pytest.mark.timeout(1200)
def test_fresh_venv_installs_from_bootstrap_and_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFEHOLD_BOOTSTRAP", "1")
    monkeypatch.setenv("SAFEHOLD_PASSWORD", PASS)
    monkeypatch.delenv("SAFEHOLD_REPOSITORY", raising=False)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("the only copy")
    (data / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    repo = tmp_path / "backup" / "repo"
    assert main(["init", "--repo", str(repo)]) == 0
    assert "wrote bootstrap/ for safehold" in capsys.readouterr().err
    assert main(["backup", str(data), "--repo", str(repo)]) == 0
    boot = repo / "bootstrap"
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=boot, check=True)

    # the new host: a copy of the folder, a fresh venv, pip with no index and no PIP_* settings
    host = tmp_path / "newhost"
    host.mkdir()
    shutil.copytree(boot, host / "bootstrap")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SAFEHOLD_", "PYTHON"))}
    env |= {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(host)}
    env["SAFEHOLD_AUDIT_LOG"] = str(host / "audit.jsonl")  # never the test machine's /var/log
    venv = host / "opt" / "safehold"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], cwd=host, env=env, check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", "bootstrap", "safehold"],
        cwd=host, env=env, check=True, timeout=900,
    )  # fmt: skip
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import safehold, sys; print(safehold.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert site.startswith(str(venv)), site  # the installed copy, not this checkout

    target = host / "restore"
    run_env = env | {"SAFEHOLD_REPOSITORY": str(repo), "SAFEHOLD_PASSWORD": PASS}
    subprocess.run(
        [str(venv / "bin" / "safehold"), "restore", "latest", "--target", str(target), "--verify"],
        env=run_env, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    restored = target / str(data).lstrip("/")
    assert (restored / "a.txt").read_text() == "the only copy"
    assert (restored / "sub" / "b.bin").read_bytes() == (data / "sub" / "b.bin").read_bytes()
