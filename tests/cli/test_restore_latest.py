"""Component restores and 'latest': the newest snapshot in which the component completed (partial
snapshots and other profiles' snapshots are skipped, and the plan says so); 'snapshots' names the failed
components; a refused restore says "refused" in its plan and changes nothing; the safety snapshot is
announced only when one is taken, SQLite included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

PASS = "latest test passphrase"


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    app = tmp_path / "srv" / "app"
    app.mkdir(parents=True)
    (app / "index.php").write_text("v1")
    flag = tmp_path / "flaky-works"
    flag.write_text("")
    db = tmp_path / "srv" / "app.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        c.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(50)])
    c.close()
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "LATEST_PASS" }}

[components.app]
kind = "files"
paths = ["{app}"]

[components.notes]
kind = "command"
command = ["echo", "release notes"]
filename = "notes.txt"
restore_command = ["sh", "-c", "cat > {tmp_path / "notes.out"}"]

[components.flaky]
kind = "command"
command = ["sh", "-c", "test -e {flag} && echo flaky data || exit 4"]
filename = "flaky.txt"
restore_command = ["sh", "-c", "cat > {tmp_path / "flaky.out"}"]

[components.db]
kind = "sqlite"
path = "{db}"

[profiles.full]
components = ["app", "notes", "flaky", "db"]

[profiles.external]
components = ["notes"]

[defaults]
profile = "full"
''')
    return {"tmp": tmp_path, "app": app, "flag": flag, "db": db, "config": cfg}


def _env(site: dict[str, Path]) -> dict[str, str]:
    return {"SAFEHOLD_CONFIG": str(site["config"]), "LATEST_PASS": PASS, "SAFEHOLD_REPOSITORY": ""}


def _backup(run, env: dict[str, str], *args: str) -> str:
    r = run("backup", "--json", *args, env=env, password=None)
    return str(r.json()["snapshot_id"])


def test_latest_is_the_newest_snapshot_where_the_component_completed(site, run) -> None:
    env = _env(site)
    assert run("init", env=env, password=None).code == 0
    complete = _backup(run, env)
    site["flag"].unlink()  # the next full backup is partial: flaky fails
    partial = _backup(run, env)
    external = _backup(run, env, "--profile", "external")

    # 'snapshots' names the failed component of the partial snapshot
    listing = run("snapshots", env=env, password=None)
    line = next(x for x in listing.out.splitlines() if x.startswith(partial[:8]))
    assert "(partial: flaky failed)" in line
    rows = {s["id"]: s for s in run("snapshots", "--json", env=env, password=None).json()}
    assert rows[partial]["failed_components"] == ["flaky"] and rows[complete]["failed_components"] == []

    def plan(*components: str) -> dict:
        r = run("restore", *components, "--dry-run", "--json", env=env, password=None)
        assert r.code == 0, r.err + r.out
        return r.json()

    # flaky: the partial one and the external one are skipped, and the plan says why
    p = plan("flaky")
    assert p["snapshot_id"] == complete and p["latest"]["snapshot_id"] == complete
    assert "flaky completed" in p["latest"]["reason"]
    skipped = " ".join(p["latest"]["skipped"])
    assert f"{partial[:8]} (flaky failed)" in skipped
    assert f"{external[:8]} (profile external without flaky)" in skipped
    # app: the partial snapshot holds a complete copy of it; the external one has none
    assert plan("app")["snapshot_id"] == partial
    assert plan("notes")["snapshot_id"] == external
    assert plan("app", "flaky")["snapshot_id"] == complete
    # text form: the resolved id and the reason
    text = run("restore", "flaky", "--dry-run", env=env, password=None)
    assert f"Restore plan for snapshot {complete[:8]}" in text.out
    assert f"'latest' is {complete[:8]}, the newest snapshot in which flaky completed" in text.out
    # 'all': the newest component snapshot, with where each failed component last completed
    p = plan("all")
    assert p["snapshot_id"] == external and set(p["components"]) == {"notes"}
    # restoring for real from 'latest' uses the complete copy
    r = run("restore", "flaky", "--yes", env=env, password=None)
    assert r.code == 0, r.err + r.out
    assert (site["tmp"] / "flaky.out").read_text() == "flaky data\n"
    # an explicit snapshot where the component failed is still refused, naming where it completed
    r = run("restore", "flaky", "--snapshot", partial[:8], "--dry-run", env=env, password=None)
    assert r.code == 1 and "failed at backup time" in r.err and complete[:8] in r.err


def test_all_names_where_failed_components_last_completed(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    complete = _backup(run, env)
    site["flag"].unlink()
    partial = _backup(run, env)
    r = run("restore", "all", "--dry-run", env=env, password=None)
    assert r.code == 0, r.err
    assert f"'latest' is {partial[:8]}, the newest component snapshot" in r.out
    assert (
        f"component flaky failed in this snapshot and is not restored; its newest complete copy is in "
        f"{complete[:8]}: safehold restore flaky --snapshot {complete[:8]}"
    ) in r.out


def test_no_snapshot_holds_the_component(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    site["flag"].unlink()
    _backup(run, env)
    r = run("restore", "flaky", "--dry-run", env=env, password=None)
    assert r.code == 1
    assert "no snapshot holds a complete copy of every one of flaky" in r.err and "flaky: none" in r.err


def test_refused_restore_says_so_and_changes_nothing(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    _backup(run, env)
    (site["app"] / "index.php").write_text("changed")
    r = run("restore", "db", "app", "--dry-run", env=env, password=None)
    assert r.code == 0, r.err
    assert f"refused: {site['db']} exists; --force replaces it" in r.out
    assert "(nothing to do)" not in r.out
    p = run("restore", "db", "--dry-run", "--json", env=env, password=None).json()
    assert p["components"]["db"]["refused"] == f"refused: {site['db']} exists; --force replaces it"
    before = len(run("snapshots", "--json", env=env, password=None).json())
    r = run("restore", "db", "app", "--yes", env=env, password=None)
    assert r.code == 1
    assert "restore refused, nothing was changed: db:" in r.err
    # nothing was restored (app kept its change) and no safety snapshot was taken
    assert (site["app"] / "index.php").read_text() == "changed"
    assert len(run("snapshots", "--json", env=env, password=None).json()) == before


def test_safety_snapshot_only_when_taken_and_sqlite_included(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    _backup(run, env)
    # a restore to a new place replaces nothing: no safety snapshot is announced or taken
    elsewhere = site["tmp"] / "elsewhere.sqlite"
    r = run("restore", "db", "--set", f"db.path={elsewhere}", "--yes", env=env, password=None)
    assert r.code == 0, r.err + r.out
    assert "safety snapshot" not in r.out.lower()
    assert all("safety" not in s["tags"] for s in run("snapshots", "--json", env=env, password=None).json())
    # --force over the live SQLite file: announced, taken, and it holds the replaced database
    with sqlite3.connect(site["db"]) as c:
        c.execute("INSERT INTO t VALUES (999, 'written after the backup')")
    c.close()
    r = run("restore", "db", "--force", "--yes", "--json", env=env, password=None)
    assert r.code == 0, r.err + r.out
    out = r.json()
    assert out["safety_snapshot_of"] == ["db"] and out["safety_snapshot"]
    plan = run("restore", "db", "--force", "--dry-run", env=env, password=None).out
    assert "A safety snapshot of what will be replaced (db) would be taken first" in plan
    with sqlite3.connect(site["db"]) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 50
    c.close()
    back = site["tmp"] / "undo.sqlite"
    r = run(
        "restore", "db", "--snapshot", out["safety_snapshot"], "--set", f"db.path={back}", "--yes",
        env=env, password=None,
    )  # fmt: skip
    assert r.code == 0, r.err + r.out
    with sqlite3.connect(back) as c:
        assert c.execute("SELECT v FROM t WHERE id = 999").fetchone()[0] == "written after the backup"
    c.close()
