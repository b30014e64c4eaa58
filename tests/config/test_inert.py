"""Configuration that does nothing: 'config check' warns for every table the file sets that no command of
this version reads (config/inert.py), and says nothing for tables that are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safehold.cli.main import main
from safehold.config.inert import NOT_READ_YET

BASE = """
[repository]
url = "/srv/backup/x"
password = { env = "X" }
[components.app]
kind = "files"
paths = ["/var/www/app"]
[profiles.quick]
components = ["app"]
"""
#: A minimal setting of each table that may be unread.
TABLES = {
    "drill": '[drill]\nprofile = "quick"\n',
    "objectives": '[objectives]\nrpo = "24h"\n',
    "notifications": '[notifications]\nurls = [{ env = "NOTIFY_URL" }]\n',
}


def test_every_unread_table_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(NOT_READ_YET) <= set(TABLES), "give the new entry a minimal setting here"
    for section in NOT_READ_YET:
        cfg = tmp_path / f"{section}.toml"
        cfg.write_text(BASE + TABLES[section])
        assert main(["config", "check", "--config", str(cfg)]) == 0
        err = capsys.readouterr().err
        assert f"warning: [{section}] has no effect yet: " in err
        assert main(["config", "check", "--config", str(cfg), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert any(w.startswith(f"[{section}] has no effect yet") for w in doc["warnings"])


def test_read_tables_and_defaults_do_not_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    read = [s for s in TABLES if s not in NOT_READ_YET]
    cfg = tmp_path / "read.toml"
    cfg.write_text(BASE + "".join(TABLES[s] for s in read))
    assert main(["config", "check", "--config", str(cfg)]) == 0
    assert "has no effect" not in capsys.readouterr().err
    cfg.write_text(BASE)  # nothing set: the defaults of unread tables do not warn either
    assert main(["config", "check", "--config", str(cfg)]) == 0
    assert "has no effect" not in capsys.readouterr().err
