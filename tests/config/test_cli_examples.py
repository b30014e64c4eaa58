"""The command lines the README and ``init --help`` show work as written (global options after the command)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from safehold.cli.main import main
from safehold.config.inert import NOT_READ_YET
from safehold.errors import EXIT_USAGE
from tests.config.conftest import Server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def passfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "pass"
    p.write_text("correct horse\n")
    p.chmod(0o600)
    monkeypatch.setenv("SAFEHOLD_PASSWORD_FILE", str(p))
    for var in ("SAFEHOLD_CONFIG", "SAFEHOLD_REPOSITORY", "SAFEHOLD_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return p


def test_init_help_example_and_quick_start_with_options_after_the_command(
    server: Server, tmp_path: Path, passfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--help"]) == 0
    example = next(ln.strip() for ln in capsys.readouterr().out.splitlines() if "--preset laravel" in ln)
    assert example == "safehold init --preset laravel /var/www/app --repo /srv/backup/safehold"
    repo, cfg = tmp_path / "backup" / "x", tmp_path / "etc" / "x.toml"
    # the line: init --preset laravel APP --repo X --config Y (plus --root for the test tree)
    argv = ["init", "--preset", "laravel", str(server.app), "--repo", str(repo), "--config", str(cfg)]
    assert main([*argv, "--root", str(server.root)]) == 0
    out = capsys.readouterr().out
    assert f"created repository at {repo}" in out
    assert f"wrote {cfg}" in out
    assert main(["config", "check", "--config", str(cfg)]) == 0
    assert main(["--config", str(cfg), "config", "check"]) == 0
    assert main(["snapshots", "--repo", str(repo)]) == 0
    assert "0 snapshot(s)" in capsys.readouterr().out
    # doctor finds problems on this test tree (no database on its port), but the options are accepted
    assert main(["doctor", "--config", str(cfg), "--json"]) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert any(c["subject"] == "repository" and c["ok"] for c in checks)


def test_backup_profile_with_config_after_the_command(
    tmp_path: Path, passfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    cfg = tmp_path / "x.toml"
    cfg.write_text(
        f'version = 1\n[repository]\nurl = "{tmp_path / "repo"}"\n'
        f'[components.app]\nkind = "files"\npaths = ["{data}"]\n'
        '[profiles.quick]\ncomponents = ["app"]\n'
    )
    assert main(["init", "--config", str(cfg)]) == 0
    assert main(["backup", "--profile", "quick", "--config", str(cfg)]) == 0
    assert main(["snapshots", "--config", str(cfg), "--json"]) == 0
    snaps = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [s["profile"] for s in snaps] == ["quick"]


def test_readme_plain_paths_example(tmp_path: Path, passfile: Path) -> None:
    text = (ROOT / "README.md").read_text()
    line = re.search(r"`(safehold --repo \S+ backup [^`]+)`", text)
    assert line is not None
    app, nginx = tmp_path / "var/www/app", tmp_path / "etc/nginx"
    for d in (app / "vendor", nginx):
        d.mkdir(parents=True)
        (d / "f").write_text("x")
    words = line.group(1).replace("'", "").split()[1:]
    words = [str(tmp_path / w.lstrip("/")) if w.startswith("/") and not w.endswith("/") else w for w in words]
    assert main(["init", "--repo", words[1]]) == 0
    assert main(words) == 0


def test_config_check_failure_does_not_tell_to_run_config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[repository]\nurl = 5\n")
    assert main(["--config", str(bad), "config", "check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "config check" not in err.split("hint:", 1)[1]


def test_init_preset_with_the_passphrase_in_the_environment_warns_about_cron(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in (
        "SAFEHOLD_CONFIG",
        "SAFEHOLD_REPOSITORY",
        "SAFEHOLD_PASSWORD_FILE",
        "SAFEHOLD_PASSWORD_COMMAND",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "from the shell")
    cfg = tmp_path / "x.toml"
    argv = ["init", "--preset", "laravel", str(server.app), "--root", str(server.root)]
    assert main([*argv, "--repo", str(tmp_path / "repo"), "--config", str(cfg), "--json"]) == 0
    cap = capsys.readouterr()
    assert 'password = { env = "SAFEHOLD_PASSWORD" }' in cfg.read_text()
    assert (
        "warning: the configuration takes the passphrase from the environment variable SAFEHOLD_PASSWORD"
        in cap.err
    )
    assert "cron" in cap.err and "/root/.safehold-pass" in cap.err
    assert "from the shell" not in cap.err + cap.out
    assert json.loads(cap.out)["warnings"]
    # with a passphrase file there is nothing to warn about
    monkeypatch.delenv("SAFEHOLD_PASSWORD")
    (tmp_path / "pass").write_text("from the shell\n")
    monkeypatch.setenv("SAFEHOLD_PASSWORD_FILE", str(tmp_path / "pass"))
    assert main([*argv, "--repo", str(tmp_path / "repo"), "--config", str(cfg), "--force"]) == 0
    err = capsys.readouterr().err
    assert "passphrase from the environment" not in err
    # the preset's tables that nothing reads yet are named (config/inert.py)
    assert all(
        f"warning: [{s}] has no effect yet" in err for s in NOT_READ_YET if f"[{s}]" in cfg.read_text()
    )
