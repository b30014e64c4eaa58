"""Off-site repositories: a missing one says how to create it, ``--init-offsite`` creates it, and a copy
is named by its own id or by the id of the snapshot it was copied from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safehold.backends.local import LocalBackend
from safehold.cli.main import main
from safehold.engine.format.repository import Repository

PASS = "off-site test passphrase"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello off-site")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(
        f"""
version = 1
[repository]
url = "{tmp_path / "repo"}"
[offsite.second]
url = "{tmp_path / "second"}"
[offsite.third]
url = "{tmp_path / "third"}"
[components.app]
kind = "files"
paths = ["{data}"]
[profiles.quick]
components = ["app"]
offsite = ["second"]
[profiles.both]
components = ["app"]
offsite = ["second", "third"]
"""
    )
    monkeypatch.setenv("SAFEHOLD_PASSWORD", PASS)
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(cfg))
    monkeypatch.delenv("SAFEHOLD_REPOSITORY", raising=False)
    assert main(["init"]) == 0
    return cfg


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_missing_offsite_says_how_to_create_it(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["backup", "--profile", "quick"]) == 1
    cap = capsys.readouterr()
    assert "off-site second: FAILED no repository at" in cap.out
    hint = cap.err.split("hint:", 1)[1]
    assert "'safehold --offsite second init'" in hint and "--init-offsite" in hint
    # following the hint works, and the new repository shares the main one's deduplication parameters
    assert main(["--offsite", "second", "init"]) == 0
    main_cfg = Repository.open(LocalBackend(str(config.parent / "repo")), PASS).config
    second = Repository.open(LocalBackend(str(config.parent / "second")), PASS).config
    assert (second.id_key, second.chunker_seed) == (main_cfg.id_key, main_cfg.chunker_seed)
    assert second.id != main_cfg.id
    capsys.readouterr()
    assert main(["backup", "--profile", "quick"]) == 0


def test_init_offsite_creates_missing_ones_and_copies_keep_the_original_id(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["backup", "--profile", "both", "--init-offsite", "--json"]) == 0
    run = _json(capsys)
    original = run["snapshot_id"]
    assert [o["ok"] for o in run["offsite"]] == [True, True]
    copy_id = run["offsite"][0]["snapshot_id"]
    assert copy_id and copy_id != original
    for name in ("second", "third"):
        repo = Repository.open(LocalBackend(str(tmp_path / name)), PASS)
        assert [s.original for s in repo.snapshots()] == [original]
    # the listing shows the original id; either id names the copy
    assert main(["--offsite", "second", "snapshots"]) == 0
    assert f"(copy of {original[:8]})" in capsys.readouterr().out
    data = tmp_path / "data"
    for ref in (original[:8], copy_id[:8], original):
        assert main(["--offsite", "second", "dump", ref, f"/app{data}/a.txt"]) == 0
        assert capsys.readouterr().out == "hello off-site"
    target = tmp_path / "restored"
    assert main(["--offsite", "second", "restore", f"{original[:10]}:/app", "--target", str(target)]) == 0
    assert [p.read_text() for p in target.rglob("a.txt")] == ["hello off-site"]


def test_unknown_id_is_still_not_found(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "--profile", "quick", "--init-offsite"]) == 0
    capsys.readouterr()
    assert main(["--offsite", "second", "ls", "0000aaaa"]) != 0
    assert "no snapshot '0000aaaa'" in capsys.readouterr().err
