"""Stored names never become paths outside their folder: every reader of a tree refuses a name that breaks
the path-safety rule (absolute, ``..``, ``.``, ``/`` inside, NUL, empty, duplicate, out of order), with an
error naming it, and nothing outside the restore target is created or changed (sentinel fingerprint)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from safehold.engine.check.checker import Checker
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, Node
from safehold.engine.restore.restorer import Restorer
from safehold.errors import IntegrityError, SafeholdError, SourceError
from safehold.operations.backup.components import EngineComponentReader
from safehold.operations.export.sink import DirSink
from safehold.operations.export.snapshot import ExportOptions, export_snapshot
from safehold.operations.inspect.diff import diff_snapshots
from safehold.operations.restore.snapshot import RestoreOptions, restore_snapshot
from safehold.sources.base import SourceContext
from safehold.sources.files import FilesSource
from safehold.sources.sqlite import SQLiteSource
from safehold.sources.system import SystemOptions, SystemSource
from tests.helpers.fixtures import Result
from tests.security.hostile import Link, escapes, save_snapshot
from tests.security.sentinel import World

CASES = sorted(escapes(b"/w"))


def _case(world: World, case: str) -> tuple[list, bytes]:  # type: ignore[type-arg]
    return escapes(os.fsencode(world.root))[case]


def _refused(exc: pytest.ExceptionInfo[IntegrityError], bad: bytes) -> None:
    assert repr(bad) in exc.value.message
    assert exc.value.hint


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("helpers", [False, True], ids=["in-process", "helpers"])
def test_restore_refuses_hostile_names(repo: Repository, world: World, case: str, helpers: bool) -> None:
    entries, bad = _case(world, case)
    # a good file first, so that the restore has begun writing when it meets the hostile tree
    snap = save_snapshot(repo, [(b"0-good", [(b"ok.txt", b"fine\n")]), *entries])
    root = Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))
    restorer = Restorer(repo, helpers_from=1 if helpers else 1 << 30, overwrite="always")
    with pytest.raises(IntegrityError) as exc:
        restorer.restore(root, os.fsencode(world.target))
    _refused(exc, bad)
    world.assert_untouched()


@pytest.mark.parametrize("case", ["absolute", "dotdot-in-name", "deep-dotdot"])
def test_restore_operation_refuses_below_a_subpath(repo: Repository, world: World, case: str) -> None:
    entries, bad = _case(world, case)
    snap = save_snapshot(repo, [(b"srv", entries)])
    with pytest.raises(IntegrityError) as exc:
        restore_snapshot(repo, RestoreOptions(snapshot=snap.id, target=str(world.target), subpath="srv"))
    _refused(exc, bad)
    world.assert_untouched()


def _component_snapshot(repo: Repository, kind: str, tree: list) -> str:  # type: ignore[type-arg]
    snap = save_snapshot(
        repo, [(b"comp", tree)], components={"comp": {"kind": kind, "status": "ok", "metadata": {}}}
    )
    return snap.id


@pytest.mark.parametrize("case", CASES)
def test_files_component_restore_refuses_hostile_names(repo: Repository, world: World, case: str) -> None:
    entries, bad = _case(world, case)
    snap_id = _component_snapshot(repo, "files", [(b"srv", [(b"app", entries)])])
    source = FilesSource("comp", {"paths": ["/srv/app"]})
    reader = EngineComponentReader(repo, repo.find_snapshot(snap_id), "comp")
    ctx = SourceContext(force=True, options={"target_root": str(world.target)})
    with pytest.raises(IntegrityError) as exc:
        source.restore(reader, ctx)
    _refused(exc, bad)
    world.assert_untouched()


@pytest.mark.parametrize("case", [c for c in CASES if c not in ("deep-dotdot", "slash-inside")])
def test_dump_component_restore_refuses_hostile_names(repo: Repository, world: World, case: str) -> None:
    entries, _bad = _case(world, case)
    # the component's own folder holds the hostile names (a dump kind reads only that folder)
    stats = {
        "file": "app.sqlite3",
        "original_path": str(world.target / "app.sqlite3"),
        "tables": {},
        "bytes": 16,
    }
    legit = [(b"app.sqlite3", b"SQLite format 3\x00"), (b"table_statistics.json", json.dumps(stats).encode())]
    snap_id = _component_snapshot(repo, "sqlite", [*entries, *legit])
    source = SQLiteSource("comp", {"path": str(world.target / "app.sqlite3")})
    reader = EngineComponentReader(repo, repo.find_snapshot(snap_id), "comp")
    with pytest.raises(IntegrityError):
        source.restore(reader, SourceContext(force=True))
    world.assert_untouched()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", ["", ".tar.zst", ".tar"])
def test_export_refuses_hostile_names(repo: Repository, world: World, case: str, fmt: str) -> None:
    entries, bad = _case(world, case)
    # as a plain snapshot (one tar of the tree) and as a component kind exported as plain files
    snap = save_snapshot(repo, [(b"srv", entries)])
    comp = _component_snapshot(repo, "command", entries)
    for n, ref in enumerate((snap.id, comp)):
        out = world.target / f"export{n}{fmt}"
        with pytest.raises(IntegrityError) as exc:
            export_snapshot(repo, ExportOptions(snapshot=ref, output=str(out)))
        _refused(exc, bad)
        assert os.listdir(world.target) == []  # nothing left behind, not even a partial output
    world.assert_untouched()


@pytest.mark.parametrize("case", CASES)
def test_check_reports_hostile_names_as_damage(repo: Repository, world: World, case: str) -> None:
    entries, bad = _case(world, case)
    snap = save_snapshot(repo, [(b"srv", [(b"www", entries)])])
    result = Checker(repo).run(read_data=True)
    assert not result.ok
    (err,) = result.errors
    where = (
        "/srv/www/a/b" if case == "deep-dotdot" else "/srv/www/sub" if case == "slash-inside" else "/srv/www"
    )
    assert err.startswith(f"snapshot {snap.short_id}{where}: tree ") and repr(bad) in err


def test_diff_refuses_hostile_names(repo: Repository, world: World) -> None:
    good = save_snapshot(repo, [(b"srv", [(b"a", b"a\n")])])
    entries, bad = _case(world, "dotdot-in-name")
    hostile = save_snapshot(repo, [(b"srv", entries)])
    with pytest.raises(IntegrityError) as exc:
        diff_snapshots(repo, good.id, hostile.id)
    _refused(exc, bad)


# ---- the real CLI: a clear message, the documented exit code, no traceback, nothing touched --------------
Run = Callable[..., Result]


def _cli_refused(r: Result, bad: bytes) -> None:
    assert r.code == 1, r.err
    assert repr(bad) in r.err and "Traceback" not in r.err and "hint:" in r.err.lower()


@pytest.mark.parametrize("case", ["absolute", "dotdot-in-name", "nul", "duplicate"])
def test_cli_refuses_hostile_names(repo: Repository, run: Run, world: World, case: str) -> None:
    entries, bad = _case(world, case)
    snap = save_snapshot(repo, [(b"srv", [(b"ok.txt", b"fine\n"), (b"www", entries)])])
    _cli_refused(run("restore", snap.id, "--target", str(world.target)), bad)
    _cli_refused(
        run("restore", f"{snap.id}:/srv/www", "--target", str(world.target), "--overwrite", "always"), bad
    )
    _cli_refused(run("export", snap.id, str(world.target / "out.tar.zst")), bad)
    _cli_refused(run("ls", snap.id), bad)
    _cli_refused(run("dump", snap.id, "/srv/www/x"), bad)
    r = run("dump", snap.id, "/srv/ok.txt")  # the folder above is sound: its files are readable
    assert r.code == 0 and r.out == "fine\n"
    r = run("check")
    assert r.code != 0 and repr(bad) in r.out + r.err and f"snapshot {snap.short_id}/srv/www" in r.out + r.err
    world.exclude("target/out.tar.zst")  # (never created: asserted below)
    assert sorted(os.listdir(world.target)) in ([], ["srv"])
    world.assert_untouched()


# ---- stored names that become paths elsewhere: export layouts, the system source's manifest ------------
@pytest.mark.parametrize("fmt", ["", ".tar"])
def test_export_never_writes_through_a_symlink_of_the_snapshot(
    repo: Repository, world: World, fmt: str
) -> None:
    # A mysql component's files and its database folder's files share one folder of the export: a symlink
    # beside the database folder must not become the parent of the database's files.
    evil = Link(os.fsencode(world.outside / "etc"))
    tree = [
        (b"evil", evil),
        (b"shop", [(b"evil", [(b"planted.sh", b"evil\n")]), (b"full_dump.sql", b"--\n")]),
    ]
    snap = save_snapshot(repo, [(b"db", tree)], components={"db": {"kind": "mysql", "status": "ok"}})
    out = world.target / f"export{fmt}"
    with pytest.raises(SafeholdError, match="collide"):
        export_snapshot(repo, ExportOptions(snapshot=snap.id, output=str(out)))
    assert os.listdir(world.target) == []
    world.assert_untouched()


def test_dir_export_sink_refuses_a_symlink_as_a_parent(tmp_path: Path, world: World) -> None:
    sink = DirSink(os.fsencode(tmp_path / "out"))
    sink.add_symlink("a", os.fsencode(world.outside / "etc"), mtime_ns=0)
    with pytest.raises(IntegrityError):
        sink.add_file("a/planted.sh", 5, [b"evil\n"], mode=0o644, mtime_ns=0)
    with pytest.raises(IntegrityError):
        sink.add_dir("a/sub")
    sink.abort()
    world.assert_untouched()


def test_dir_export_sink_never_writes_through_its_folder_swapped_for_a_symlink(
    tmp_path: Path, world: World
) -> None:
    # an export into a folder another user can write: they move the export's new folder away and put a
    # symlink to a folder of theirs (or /etc) at its name while the export is written
    sink = DirSink(os.fsencode(world.target / "out"))
    sink.add_file("first.txt", 3, [b"one"], mode=0o644, mtime_ns=0)
    tmp = os.fsdecode(sink.tmp)
    os.rename(tmp, tmp + ".moved")
    os.symlink(world.outside / "etc", tmp)
    sink.add_dir("sub")
    sink.add_file("sub/planted.sh", 5, [b"evil\n"], mode=0o755, mtime_ns=0)
    sink.add_symlink("link", b"/etc/passwd", mtime_ns=0)
    with pytest.raises(IntegrityError, match="was replaced while the export was written"):
        sink.commit()
    sink.abort()
    assert os.readlink(tmp) == str(world.outside / "etc")  # left alone
    assert sorted(os.listdir(tmp + ".moved")) == ["first.txt", "link", "sub"]  # written where it was made
    assert not os.path.lexists(world.target / "out")
    world.assert_untouched()


@pytest.mark.parametrize("where", ["absolute", "dotdot", "collector"])
def test_system_restore_refuses_hostile_manifest_paths(repo: Repository, world: World, where: str) -> None:
    planted = os.path.join(os.fsdecode(world.outside), "etc", "planted.sh")
    path, cname = {"absolute": (planted, "cron"), "dotdot": ("../outside/etc/planted.sh", "cron")}.get(
        where, ("planted.sh", "../outside/etc")
    )
    item = {"path": path, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime_ns": 0}
    manifest = {"format": 1, "root": "/", "collectors": {cname: {"items": [item], "missing": []}}}
    # the content sits where the reader finds it ('cron//abs/...' and 'cron/abs/...' are one path to it)
    inner: list = [(b"planted.sh", b"evil\n")]  # type: ignore[type-arg]
    for part in reversed([os.fsencode(p) for p in f"{cname}/{path}".split("/") if p][:-1]):
        inner = [(part, inner)] if part != b".." else inner
    tree = [(b"manifest.json", json.dumps(manifest).encode()), *inner]
    tree.sort(key=lambda e: e[0])
    snap = save_snapshot(repo, [(b"sys", tree)], components={"sys": {"kind": "system", "status": "ok"}})
    source = SystemSource("sys", SystemOptions(root=str(world.target)))
    reader = EngineComponentReader(repo, repo.find_snapshot(snap.id), "sys")
    with pytest.raises(SourceError, match=r"manifest\.json"):
        source.restore(reader, SourceContext(force=True))
    world.assert_untouched()
