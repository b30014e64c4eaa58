"""Profile backups and component restores through the CLI: hooks, root files, fail-closed components,
off-site copies, a plan before every restore, safety snapshots, bare-metal restore without local config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.treecompare import compare_trees
from tests.sources.conftest import MYSQL, mysql_dbs, mysql_root  # noqa: F401 - fixture

PASS = "profile test passphrase"


def _checksums(db: str) -> dict[str, int]:
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("SHOW TABLES")
        tables = [r[0] for r in cur.fetchall()]
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
        return {r[0].split(".")[1]: r[1] for r in cur.fetchall()}


@pytest.fixture
def server(tmp_path: Path, mysql_dbs) -> dict[str, object]:  # noqa: F811
    app = tmp_path / "srv" / "var" / "www" / "app"
    (app / "public").mkdir(parents=True)
    (app / "public" / "index.php").write_text("<?php echo 'hi';")
    (app / ".env").write_text("APP_KEY=base64:abc\nDB_PASSWORD=\n")
    os.chmod(app / ".env", 0o600)
    (app / "vendor" / "x").mkdir(parents=True)
    (app / "vendor" / "x" / "lib.php").write_text("vendor")
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, txt VARCHAR(50), b BLOB) CHARACTER SET utf8mb4")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s, %s)", [(i, f"zeile {i} 😀", os.urandom(20)) for i in range(200)]
        )
    marker = tmp_path / "hooks.log"
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "PROFILE_PASS" }}

[offsite.second]
url = "{tmp_path / "offsite"}"
password = {{ env = "PROFILE_PASS" }}

[components.app]
kind = "files"
paths = ["{app}"]
excludes = ["vendor/"]

[components.database]
kind = "mysql"
databases = ["{db}"]
host = "127.0.0.1"
user = "root"

[components.notes]
kind = "command"
command = ["echo", "release notes"]
filename = "notes.txt"
restore_command = ["sh", "-c", "cat > {tmp_path / "notes.out"}"]

[components.flaky]
kind = "command"
command = ["sh", "-c", "echo oops >&2; exit 4"]
filename = "never.txt"
optional = true

[profiles.full]
components = ["app", "database", "notes", "flaky"]
tags = ["full"]
offsite = ["second"]

[profiles.broken]
components = ["app", "flaky"]

[defaults]
profile = "full"

[[hooks.before_backup]]
command = ["sh", "-c", "echo before >> {marker}"]
[[hooks.after_backup]]
command = ["sh", "-c", "echo after >> {marker}"]
always = true
''')
    return {"app": app, "db": db, "config": cfg, "marker": marker, "tmp": tmp_path}


def _env(server: dict[str, object]) -> dict[str, str]:
    return {"SAFEHOLD_CONFIG": str(server["config"]), "PROFILE_PASS": PASS, "SAFEHOLD_REPOSITORY": ""}


def test_profile_backup_destroy_restore_all(server, run) -> None:
    env = _env(server)
    tmp = server["tmp"]
    assert isinstance(tmp, Path)
    assert run("config", "check", env=env, password=None).code == 0
    assert run("init", env=env, password=None).code == 0
    assert run("--repo", str(tmp / "offsite"), "init", env=env, password=PASS).code == 0
    r = run("backup", "--json", env=env, password=None)
    out = r.json()
    assert r.code == 0, r.err + r.out  # the failing component is optional
    assert out["components"]["flaky"]["status"] == "failed" and "4" in out["components"]["flaky"]["error"]
    assert out["offsite"][0]["ok"] is True
    # the named off-site repository is a first-class repository: check and list it by its name
    assert run("--offsite", "second", "check", "--read-data", env=env, password=None).code == 0
    copied = run("--offsite", "second", "snapshots", "--json", env=env, password=None).json()
    assert [s["original"] for s in copied] == [out["snapshot_id"]]
    assert run("--offsite", "nope", "snapshots", env=env, password=None).code == 2
    assert Path(str(server["marker"])).read_text() == "before\nafter\n"
    # root files
    listing = {e["path"] for e in run("ls", "latest", "--json", env=env, password=None).json()}
    assert {"/metadata.json", "/backup.log", "/RESTORE.md", "/safehold.toml"} <= listing
    assert not any(p.startswith("/flaky") for p in listing)
    guide = run("dump", "latest", "/RESTORE.md", env=env, password=None).out
    assert "# Restore guide" in guide and "safehold restore database --snapshot SNAP" in guide
    meta = json.loads(run("dump", "latest", "/metadata.json", env=env, password=None).out)
    assert meta["components"]["database"]["status"] == "ok" and meta["profile"] == "full"
    # destroy everything
    app = server["app"]
    assert isinstance(app, Path)
    before_db = _checksums(str(server["db"]))
    import shutil

    shutil.copytree(app, tmp / "original", symlinks=True)
    shutil.rmtree(app)
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{server['db']}`")
    # plan first
    plan = run("restore", "all", "--dry-run", "--json", env=env, password=None).json()
    assert set(plan["components"]) == {"app", "database", "notes"} and plan["dry_run"] is True
    assert not app.exists()
    r = run("restore", "all", "--yes", "--json", env=env, password=None)
    assert r.code == 0, r.err + r.out
    shutil.rmtree(tmp / "original" / "vendor")
    assert compare_trees(tmp / "original", app, check_owner=False) == []
    assert _checksums(str(server["db"])) == before_db
    assert (tmp / "notes.out").read_text() == "release notes\n"


def test_safety_snapshot_and_bare_metal(server, run) -> None:
    env = _env(server)
    tmp = server["tmp"]
    assert isinstance(tmp, Path)
    run("init", env=env, password=None)
    assert run("backup", "--profile", "full", env=env, password=None).code == 1  # off-site repo missing
    snaps = run("snapshots", "--json", env=env, password=None).json()
    assert len(snaps) == 1
    app = server["app"]
    assert isinstance(app, Path)
    (app / "public" / "index.php").write_text("changed locally")
    r = run("restore", "app", "--yes", "--json", env=env, password=None)
    assert r.code == 0, r.err
    safety = r.json()["safety_snapshot"]
    assert safety and (app / "public" / "index.php").read_text() == "<?php echo 'hi';"
    # the safety snapshot holds what was replaced
    t = tmp / "safety"
    assert run("restore", safety, "--target", str(t), env=env, password=None).code == 0
    found = list(t.rglob("index.php"))
    assert found and found[0].read_text() == "changed locally"
    # bare metal: no local configuration at all, only repository and passphrase
    bare = {"SAFEHOLD_CONFIG": str(tmp / "does-not-exist.toml"), "SAFEHOLD_REPOSITORY": str(tmp / "repo")}
    r = run(
        "restore",
        "app",
        "--target-root",
        str(tmp / "newhost"),
        "--yes",
        env=bare | {"SAFEHOLD_CONFIG": ""},
        password=PASS,
    )
    assert r.code == 0, r.err
    assert (tmp / "newhost" / str(app).lstrip("/") / "public" / "index.php").read_text() == "<?php echo 'hi';"


def test_failed_required_component_makes_backup_fail(server, run) -> None:
    env = _env(server)
    cfg = Path(str(server["config"]))
    cfg.write_text(cfg.read_text().replace("optional = true", "optional = false"))
    run("init", env=env, password=None)
    r = run("backup", "--profile", "broken", "--json", env=env, password=None)
    assert r.code == 1
    assert r.json()["partial"] is True
    assert "flaky" in r.err
    # the after hook with always=true ran even though the backup failed
    assert Path(str(server["marker"])).read_text() == "before\nafter\n"
    meta = json.loads(run("cat", "snapshot", "latest", env=env, password=None).out)
    assert meta["components"]["flaky"]["status"] == "failed" and meta["partial"] is True
