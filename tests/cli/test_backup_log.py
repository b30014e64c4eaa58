"""``backup.log`` holds each line once, time-stamped, in the order things happened; the command's output
lists hooks where they ran."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from safehold.cli.main import main


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(
        f"""
version = 1
[repository]
url = "{tmp_path / "repo"}"
[components.db]
kind = "sqlite"
path = "{db}"
[components.out]
kind = "command"
command = ["sh", "-c", "echo data; echo 'a warning' >&2"]
[profiles.quick]
components = ["db", "out"]
[[hooks.before_backup]]
command = ["true", "before"]
[[hooks.after_backup]]
command = ["true", "after"]
"""
    )
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "pw")
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(cfg))
    monkeypatch.delenv("SAFEHOLD_REPOSITORY", raising=False)
    assert main(["init"]) == 0
    return cfg


def test_backup_log_lines_once_in_order_with_times(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["backup", "--profile", "quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the command's own output: the before hook first, then the components, then the after hook
    assert [i for i, ln in enumerate(out) if "hook 'true before'" in ln] == [0]
    after = [i for i, ln in enumerate(out) if "hook 'true after'" in ln]
    components = [i for i, ln in enumerate(out) if re.match(r"\s+(db|out)\s", ln)]
    assert len(after) == 1 and len(components) == 2 and max(components) < after[0]

    assert main(["dump", "latest", "/backup.log"]) == 0
    log = capsys.readouterr().out.splitlines()
    body = [ln for ln in log if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", ln)]
    texts = [ln.split(" ", 1)[1] for ln in body]
    assert texts[0] == "before_backup hook 'true before' ok"
    copied = [t for t in texts if t.startswith("[db] copied ")]
    assert len(copied) == 1, log  # the sqlite source says it on both of its channels: one line
    db_lines = [i for i, t in enumerate(texts) if t.startswith("[db] ")]
    out_lines = [i for i, t in enumerate(texts) if t.startswith("[out] ")]
    assert texts[db_lines[-1]].startswith("[db] sqlite: ok in ")  # a component's result ends its lines
    assert texts[out_lines[-1]].startswith("[out] command: ok in ")
    assert max(db_lines) < min(out_lines)
    assert any("a warning" in t for t in texts)
    assert len(texts) == len(set(texts))
    assert "after_backup hooks" in log[-2]
