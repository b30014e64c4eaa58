"""The config commands and ``init --preset`` through the CLI layer, with real files and repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safehold.backends.registry import open_backend
from safehold.cli.app import App
from safehold.cli.cmd_config import run_init_preset
from safehold.cli.main import main
from safehold.config.docgen import reference, sample
from safehold.config.loader import load_config
from safehold.engine.format.repository import Repository
from safehold.errors import UsageError
from tests.config.conftest import Server

BROKEN = """
[repository]
url = "/r"
password = "hunter2"
[components.database]
kind = "mysql"
databases = ["x"]
host = 5
[profiles.quick]
components = ["database", "app"]
"""


def test_config_check_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(sample())
    assert main(["config", "check", "--config", str(good)]) == 0
    assert f"configuration OK: 2 components, 1 profile ({good})" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: 3 problems in the configuration" in err
    assert "At 'repository.password': literal secrets are not allowed here" in err
    assert "At 'components.database.host': Input should be a valid string" in err
    assert "At 'profiles.quick.components[1]': no component named 'app'" in err
    assert "hunter2" not in err


def test_config_check_json_and_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(bad))
    assert main(["config", "check", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and len(out["problems"]) == 3
    assert main(["config", "check", "--config", str(tmp_path / "missing.toml")]) == 2


def test_sample_and_reference_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "sample"]) == 0
    assert capsys.readouterr().out == sample()
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == reference()
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- config-reference:start -->\n<!-- config-reference:end -->\n")
    assert main(["config", "reference", "--update-readme", "--readme", str(readme)]) == 0
    assert "updated" in capsys.readouterr().out
    assert reference() in readme.read_text()


def test_init_preset_laravel_writes_config_and_creates_repository(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "correct horse")
    repo_url = str(tmp_path / "repo")
    cfg_path = tmp_path / "etc" / "safehold.toml"
    run_init_preset(App(), "laravel", server.app, cfg_path, server.root, repo_url=repo_url)
    out = capsys.readouterr().out
    assert "found:" in out and "+ database" in out and "not found:" in out
    assert f"wrote {cfg_path}: 15 components, 4 profiles (quick, comprehensive, full, external)" in out
    assert "created repository" in out
    assert cfg_path.stat().st_mode & 0o777 == 0o600
    cfg = load_config(cfg_path)
    assert cfg.repository.url == repo_url
    assert cfg.repository.password is not None and cfg.repository.password.env == "SAFEHOLD_PASSWORD"
    text = cfg_path.read_text()
    for secret in server.secrets:
        assert secret not in text and secret not in out
    Repository.open(open_backend(repo_url), "correct horse")  # the repository exists and opens

    with pytest.raises(UsageError, match="exists; not overwriting"):
        run_init_preset(App(), "laravel", server.app, cfg_path, server.root, repo_url=repo_url)
    run_init_preset(App(), "laravel", server.app, cfg_path, server.root, repo_url=repo_url, force=True)
    assert "exists; left as it is" in capsys.readouterr().out
    assert main(["config", "check", "--config", str(cfg_path)]) == 0


def test_init_preset_generic_and_errors(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    cfg_path = tmp_path / "g.toml"
    app = App(password_file=str(pw), json=True)
    run_init_preset(app, "generic", None, cfg_path, server.root, repo_url=str(tmp_path / "repo"))
    cfg = load_config(cfg_path)
    assert set(cfg.components) == {"system", "system-info"}
    assert cfg.repository.password is not None and cfg.repository.password.file == str(pw)
    with pytest.raises(UsageError, match="unknown preset"):
        run_init_preset(app, "django", server.app, tmp_path / "x.toml", server.root)
    with pytest.raises(UsageError, match="needs the application folder"):
        run_init_preset(app, "laravel", None, tmp_path / "x.toml", server.root)
    assert not (tmp_path / "x.toml").exists()
