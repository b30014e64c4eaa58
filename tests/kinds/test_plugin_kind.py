"""Adding a kind needs one package and nothing in ``operations/`` or ``cli/``: a kind that exists only
in this test (:mod:`tests.kinds.notes_kind`) goes through backup, doctor (its preflight), restore plan and
apply, a refused unknown restore option, and export, all through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from tests.kinds.notes_kind import KIND, NOTES_CLI

PASSWORD = "correct horse battery staple"


def test_a_test_only_kind_through_the_cli(tmp_path: Path, cache_dir: Path) -> None:
    repo = tmp_path / "repo"
    Repository.init(LocalBackend(str(repo)), PASSWORD)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("first note\n")
    (notes / "b.txt").write_text("second note\n")
    config = tmp_path / "safehold.toml"
    config.write_text(
        f'version = 1\n[repository]\nurl = "{repo}"\n[components.notes]\nkind = "{KIND}"\npath = "{notes}"\n'
    )
    env = {**os.environ, "SAFEHOLD_PASSWORD": PASSWORD, "SAFEHOLD_CACHE_DIR": str(cache_dir)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NOTES_CLI, "--config", str(config), *args],
            capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    r = cli("--json", "backup")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["components"]["notes"]["status"] == "ok"

    r = cli("--json", "doctor")
    found = [f for f in json.loads(r.stdout)["checks"] if f["subject"] == "notes"]
    assert [(f["check"], f["ok"]) for f in found] == [("folder", True)], r.stdout

    for note in notes.iterdir():
        note.unlink()
    r = cli("--json", "restore", "notes", "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["components"]["notes"]["plan"]
    assert plan == [f"write {notes / 'a.txt'}", f"write {notes / 'b.txt'}"]
    assert list(notes.iterdir()) == []  # a plan changes nothing

    r = cli("restore", "notes", "--set", "notes.target_rot=/tmp")
    assert r.returncode == 2 and "target_rot" in r.stderr and "target_root" in r.stderr, r.stderr

    r = cli("--json", "restore", "notes", "--yes", "--no-safety-snapshot")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["components"]["notes"]["done"] == plan  # the plan shown is the plan applied
    assert (notes / "a.txt").read_text() == "first note\n" and (
        notes / "b.txt"
    ).read_text() == "second note\n"

    out = tmp_path / "export"
    r = cli("export", "latest", str(out))
    assert r.returncode == 0, r.stderr
    exported = next(out.iterdir()) if not (out / "notes").exists() else out
    assert (exported / "notes" / "a.txt").read_text() == "first note\n"
    assert "`notes/`: the component's files as stored." in (exported / "RESTORE.md").read_text()
