"""Every user-facing failure has its documented exit code and a one-line message, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from safehold.errors import (
    EXIT_LOCKED,
    EXIT_NO_REPOSITORY,
    EXIT_PARTIAL,
    EXIT_USAGE,
    EXIT_WRONG_PASSWORD,
)


def _one_line_error(err: str) -> None:
    # warnings may come first (a backup's preflight on a nearly full test machine says so)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert lines and lines[0].startswith("error: "), err
    assert "Traceback" not in err


def test_wrong_passphrase(tmp_path: Path, run) -> None:
    run("init")
    r = run("snapshots", password="not the passphrase")
    assert r.code == EXIT_WRONG_PASSWORD
    _one_line_error(r.err)
    assert "hint:" in r.err


def test_missing_repository(tmp_path: Path, run) -> None:
    r = run("snapshots")
    assert r.code == EXIT_NO_REPOSITORY
    _one_line_error(r.err)


def test_corrupt_config_file(tmp_path: Path, run, repo_path: Path) -> None:
    run("init")
    cfg = repo_path / "config"
    os.chmod(cfg, 0o600)
    cfg.write_bytes(b"this is not a config")
    r = run("snapshots")
    assert r.code == 1
    _one_line_error(r.err)
    assert "config" in r.err


def test_unreadable_source_file_gives_partial_snapshot(tmp_path: Path, run) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    locked = src / "locked.txt"
    locked.write_text("no")
    locked.chmod(0)
    closed = src / "closed"
    closed.mkdir()
    (closed / "inner").write_text("x")
    closed.chmod(0)
    run("init")
    try:
        r = run("backup", str(src), "--json", no_dac_override=True)
    finally:
        closed.chmod(0o755)
    assert r.code == EXIT_PARTIAL, r.err
    out = r.json()
    assert out["partial"] is True
    assert any("locked.txt" in e for e in out["errors"]) and any("closed" in e for e in out["errors"])
    assert "locked.txt" in r.err
    # the snapshot exists, is marked partial, and holds what could be read
    snaps = run("snapshots", "--json").json()
    assert snaps[0]["partial"] is True
    target = tmp_path / "t"
    assert run("restore", "latest", "--target", str(target)).code == 0
    assert (target / str(src).lstrip("/") / "ok.txt").read_text() == "fine"


def test_locked_repository(tmp_path: Path, run, repo) -> None:
    lock = repo.lock(exclusive=True, operation="prune")
    try:
        src = tmp_path / "s"
        src.mkdir()
        r = run("backup", str(src))
        assert r.code == EXIT_LOCKED
        _one_line_error(r.err)
        # unlock without --remove-all leaves a live lock alone
        assert run("unlock").code == 0
        assert run("backup", str(src)).code == EXIT_LOCKED
    finally:
        lock.release()
    assert run("backup", str(tmp_path / "s")).code == 0


def test_usage_errors(run) -> None:
    assert run("restore").code == EXIT_USAGE  # nothing to restore
    assert run("restore", "a", "b", "--target", "x").code == EXIT_USAGE  # --target takes one snapshot
    assert run("restore", "all", "app").code == EXIT_USAGE
    assert run("no-such-command").code == EXIT_USAGE
    assert run("check", "--read-data-subset", "7/3").code == EXIT_USAGE


def test_missing_passphrase(run) -> None:
    r = run("init", password=None)
    assert r.code == EXIT_USAGE
    _one_line_error(r.err)


def test_restore_set_option_parsing(run) -> None:
    from safehold.cli.cmd_restore import _parse_sets

    assert _parse_sets(("retell.base_url=https://x.test", "db.port=3307", "a.flags=[1,2]")) == {
        "retell": {"base_url": "https://x.test"},
        "db": {"port": 3307},
        "a": {"flags": [1, 2]},
    }
    assert run("restore", "all", "--set", "no-dot=1").code == EXIT_USAGE
