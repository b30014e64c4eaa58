"""``doctor`` reports passphrase files, configuration, repository and cache folders that others can read,
enter or change, with the chmod that fixes each; fixed, they are reported ok."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safehold.cli.main import main


def _permissions(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return [c for c in doc["checks"] if c["subject"] == "permissions"]


def _by_check(found: list[dict[str, Any]]) -> dict[str, tuple[bool, str, str | None]]:
    return {c["check"]: (c["ok"], c["message"], c["hint"]) for c in found}


def test_doctor_reports_readable_secrets_and_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    passfile = tmp_path / "pass"
    passfile.write_text("doctor passphrase\n")
    offsite_pass = tmp_path / "offsite.pass"
    offsite_pass.write_text("offsite passphrase\n")
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(
        f'version = 1\n[repository]\nurl = "{repo}"\n'
        f'[offsite.far]\nurl = "{tmp_path / "far"}"\npassword = {{ file = "{offsite_pass}" }}\n'
        f'[components.app]\nkind = "files"\npaths = ["{data}"]\n'
    )
    monkeypatch.setenv("SAFEHOLD_PASSWORD_FILE", str(passfile))
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(cfg))
    monkeypatch.setenv("SAFEHOLD_CACHE_DIR", str(cache))
    monkeypatch.delenv("SAFEHOLD_PASSWORD", raising=False)
    assert main(["init"]) == 0
    cache.mkdir(mode=0o755)
    for path, mode in [(passfile, 0o644), (offsite_pass, 0o640), (cfg, 0o644), (repo, 0o755), (cache, 0o755)]:
        path.chmod(mode)
    capsys.readouterr()
    assert main(["doctor", "--json"]) == 1
    every = _permissions(capsys)
    found = _by_check(every)
    assert found["passphrase file"][0] is False
    assert found["config"] == (
        False,
        f"configuration {cfg} is readable by others (mode 0644): it names the servers, paths and where "
        "the secrets are",
        f"chmod 600 {cfg}",
    )
    assert found["repository folder"][:2] == (
        False,
        f"repository folder {repo} can be read or entered by others (mode 0755): it can be copied away "
        "and its passphrase attacked offline",
    )
    assert found["cache folder"][2] == f"chmod 700 {cache}"
    passfiles = [c for c in every if c["check"] == "passphrase file"]
    assert [(c["ok"], c["hint"]) for c in passfiles] == [
        (False, f"chmod 600 {passfile}"),
        (False, f"chmod 600 {offsite_pass}"),
    ]
    cfg.chmod(0o666)
    assert main(["doctor", "--json"]) == 1
    assert "is writable by others (mode 0666)" in _by_check(_permissions(capsys))["config"][1]

    for path, mode in [(passfile, 0o600), (offsite_pass, 0o600), (cfg, 0o600), (repo, 0o700), (cache, 0o700)]:
        path.chmod(mode)
    assert main(["doctor", "--json"]) == 0
    assert all(c["ok"] for c in _permissions(capsys))
