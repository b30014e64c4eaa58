"""Component restores that write single files (not through ``restore_tree``) never follow a symlink that
an unprivileged user planted on the way from the target root down to what they write: the ``system``
kind's single files (a user's crontab, ``etc/crontab``) and top-level symlinks, a SQLite database, a Redis
RDB file, a ``command`` component's file, a git repository (its clone or its state files). The same rule as the
``files`` kind (tests/security/test_symlinks.py): root's own symlinks above the path are followed, another
user's symlink (or a file) where a folder goes is refused, or with ``--force`` replaced. Every test
proves that nothing outside the target was created, changed or chmod-ed (sentinel fingerprint)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.backup.components import EngineComponentReader
from safehold.sources.base import Source, SourceContext
from safehold.sources.command import CommandSource
from safehold.sources.component import ComponentReader
from safehold.sources.git import GitSource
from safehold.sources.redis import RedisSource
from safehold.sources.sqlite import SQLiteSource
from safehold.sources.system import SystemOptions, SystemSource
from tests.security.hostile import MTIME, save_snapshot
from tests.security.sentinel import World
from tests.sources.conftest import free_port
from tests.sources.memcomponent import MemoryComponent

NOBODY = 65534
CRONTAB = b"* * * * * php artisan schedule:run\n"
SYSTAB = b"17 * * * * root run-parts /etc/cron.hourly\n"
FORCE = pytest.mark.parametrize("force", [False, True], ids=["refused", "force"])
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's symlink needs root")


def _meta(mode: int, uid: int = 0) -> dict[str, object]:
    return {"mode": mode, "uid": uid, "gid": 0, "user": None, "group": None, "mtime_ns": MTIME}


MANIFEST = {
    "format": 1,
    "root": "/",
    "collectors": {
        "cron": {
            "patterns": ["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.d/*"],
            "missing": [],
            "items": [
                {
                    "path": "var/spool/cron/crontabs/www-data",
                    "type": "file",
                    **_meta(0o600, 33),
                    "parent": _meta(0o1730),
                },
                {"path": "etc/crontab", "type": "file", **_meta(0o644), "parent": _meta(0o755)},
                {"path": "etc/cron.d/app", "type": "symlink", "target": "/srv/app/cron"},
            ],
        }
    },
}
#: Folders below the target root on the way to the single files and the symlink.
FOLDERS = ["var", "var/spool/cron", "var/spool/cron/crontabs", "etc", "etc/cron.d"]


def _component(repo: Repository) -> tuple[SystemSource, EngineComponentReader]:
    entries = [
        (
            b"sys",
            [
                (
                    b"cron",
                    [
                        (b"etc", [(b"crontab", SYSTAB)]),
                        (b"var", [(b"spool", [(b"cron", [(b"crontabs", [(b"www-data", CRONTAB)])])])]),
                    ],
                ),
                (b"manifest.json", json.dumps(MANIFEST).encode()),
            ],
        )
    ]
    snap = save_snapshot(repo, entries, components={"sys": {"kind": "system", "status": "ok"}})
    return SystemSource("sys", SystemOptions()), EngineComponentReader(
        repo, repo.find_snapshot(snap.id), "sys"
    )


def _plant(world: World, where: str, to: Path, uid: int = NOBODY) -> Path:
    link = world.target / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(to)
    os.lchown(link, uid, uid)
    return link


def _to_target(world: World, force: bool) -> SourceContext:
    """A restore below the world's target root, with or without --force."""
    return SourceContext(force=force, options={"target_root": str(world.target)})


def _restored(base: Path) -> None:
    crontab = base / "var/spool/cron/crontabs/www-data"
    assert crontab.read_bytes() == CRONTAB and stat.S_IMODE(os.lstat(crontab).st_mode) == 0o600
    assert os.lstat(crontab).st_mtime_ns == MTIME
    if os.geteuid() == 0:
        assert os.lstat(crontab).st_uid == 33
    assert (base / "etc/crontab").read_bytes() == SYSTAB
    assert os.readlink(base / "etc/cron.d/app") == "/srv/app/cron"
    assert [p for p in base.rglob("*") if ".safehold-tmp-" in p.name] == []


@ROOT_ONLY
@pytest.mark.parametrize("where", FOLDERS)
@FORCE
def test_system_restore_never_follows_a_planted_symlink(
    repo: Repository, world: World, where: str, force: bool
) -> None:
    source, reader = _component(repo)
    # the folder outside has the mode a crontab folder has: a chmod through the link would show
    link = _plant(world, where, world.outside / "etc")
    ctx = _to_target(world, force)
    plan = source.restore(reader, dataclasses.replace(ctx, dry_run=True))
    assert any(
        w.startswith(f"{link}: a symlink (to {world.outside / 'etc'}) is in the way") for w in plan.warnings
    )
    if force:
        source.restore(reader, ctx)
        _restored(world.target)
        assert stat.S_ISDIR(os.lstat(link).st_mode)
    else:
        with pytest.raises(
            SafeholdError, match=r"symlink owned by another user is in the way of a folder"
        ) as exc:
            source.restore(reader, ctx)
        assert str(link) in str(exc.value)
        assert os.readlink(link) == str(world.outside / "etc")
    world.assert_untouched()


@ROOT_ONLY
@pytest.mark.parametrize("where", ["var/spool/cron/crontabs/www-data", "etc/crontab", "etc/cron.d/app"])
def test_system_restore_replaces_a_planted_symlink_at_the_files_name(
    repo: Repository, world: World, where: str
) -> None:
    # the file's (or symlink's) own name a symlink to a private file outside: replaced, never written
    # through, never chmod-ed or chown-ed
    source, reader = _component(repo)
    for folder in ("var/spool/cron/crontabs", "etc/cron.d"):
        (world.target / folder).mkdir(parents=True, exist_ok=True)
    link = _plant(world, where, world.outside / "secret")
    source.restore(reader, _to_target(world, force=False))
    _restored(world.target)
    assert not os.path.islink(link) or where == "etc/cron.d/app"
    world.assert_untouched()


def test_system_restore_follows_roots_own_symlinks_above_the_files(repo: Repository, world: World) -> None:
    # an administrator's symlink (/var/spool -> /data/spool) is where the files live
    source, reader = _component(repo)
    real = world.target / "data-spool"
    real.mkdir()
    _plant(world, "var/spool", real, uid=os.geteuid())
    ctx = _to_target(world, force=False)
    assert source.restore(reader, dataclasses.replace(ctx, dry_run=True)).warnings == []
    source.restore(reader, ctx)
    _restored(world.target)
    assert (real / "cron/crontabs/www-data").read_bytes() == CRONTAB
    assert stat.S_IMODE(os.lstat(real / "cron/crontabs").st_mode) == 0o1730
    world.assert_untouched()


# ---- the other kinds that write single files: sqlite, redis (an RDB file), command, git --------------
@pytest.fixture
def mem(tmp_path: Path) -> MemoryComponent:
    """A component's folder in memory: what a backup wrote, read back by a restore."""
    return MemoryComponent(scratch=tmp_path / "scratch")


def _refused(world: World, where: str, source: Source, snap: ComponentReader, ctx: SourceContext) -> None:
    """Another user's symlink planted at ``where`` (to a folder outside): the plan warns of it and the
    restore refuses it, with or without --force (a single file's folder is never made by replacing
    someone's symlink with an empty folder); the link is left as it was and nothing outside the target is
    touched."""
    link = _plant(world, where, world.outside / "etc")
    warnings = source.restore(snap, dataclasses.replace(ctx, dry_run=True)).warnings
    assert any(
        w.startswith(
            f"{link}: a symlink (to {world.outside / 'etc'}) is in the way of a folder; not followed, never"
        )
        for w in warnings
    ), warnings
    with pytest.raises(
        SafeholdError, match=r"symlink owned by another user is in the way of a folder"
    ) as exc:
        source.restore(snap, ctx)
    assert str(link) in str(exc.value) and "never replaces one" in exc.value.hint
    assert os.readlink(link) == str(world.outside / "etc")
    world.assert_untouched()


@ROOT_ONLY
@FORCE
@pytest.mark.parametrize("where", ["srv", "srv/app/database"])
def test_sqlite_restore_never_follows_a_planted_symlink(
    tmp_path: Path, world: World, mem: MemoryComponent, where: str, force: bool
) -> None:
    db = tmp_path / "live.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    conn.commit()
    conn.close()
    SQLiteSource("db", {"path": str(db)}).backup(mem, SourceContext())
    source = SQLiteSource("db", {"path": "/srv/app/database/app.sqlite"})
    _refused(world, where, source, mem, _to_target(world, force))


@ROOT_ONLY
@FORCE
def test_redis_rdb_restore_never_follows_a_planted_symlink(
    world: World, mem: MemoryComponent, force: bool
) -> None:
    mem.files["dump.rdb"] = b"REDIS0011 not a real dump"
    source = RedisSource("cache", {"host": "127.0.0.1", "port": free_port()})  # no server there
    rdb = world.target / "var/lib/redis/dump.rdb"
    ctx = SourceContext(force=force, options={"mode": "rdb", "rdb_path": str(rdb)})
    _refused(world, "var/lib/redis", source, mem, ctx)


@ROOT_ONLY
@FORCE
def test_command_restore_to_a_folder_never_follows_a_planted_symlink(
    world: World, mem: MemoryComponent, force: bool
) -> None:
    source = CommandSource("export", {"command": ["printf", "exported\\n"], "filename": "dumps/export.txt"})
    source.backup(mem, SourceContext())
    _refused(world, "dumps", source, mem, _to_target(world, force))


def _git_repo(path: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (
        ["init", "-q", "-b", "main"],
        [
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, env=env)


@ROOT_ONLY
@FORCE
@pytest.mark.parametrize(
    ("bundle", "where"),
    [(True, "srv"), (True, "srv/app"), (False, "srv"), (False, "srv/app.git-state")],
    ids=["clone-above", "clone-at-the-path", "state-above", "state-at-the-folder"],
)
def test_git_restore_never_follows_a_planted_symlink(
    tmp_path: Path, world: World, mem: MemoryComponent, where: str, bundle: bool, force: bool
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    _git_repo(live)
    GitSource("app", {"path": str(live), "bundle": bundle}).backup(mem, SourceContext())
    source = GitSource("app", {"path": "/srv/app", "bundle": bundle})
    _refused(world, where, source, mem, _to_target(world, force))
