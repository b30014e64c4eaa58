"""Backup and restore of a torture tree through the real CLI, compared attribute by attribute."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.torture import make_torture_tree
from tests.helpers.treecompare import assert_trees_equal, compare_trees


def _restored(target: Path, src: Path) -> Path:
    return target / str(src).lstrip("/")


def test_torture_tree_round_trip(tmp_path: Path, run) -> None:
    src = tmp_path / "src"
    make_torture_tree(src, big_file_mib=200)
    assert run("init").code == 0
    r = run("backup", str(src), "--json")
    assert r.code == 0, r.err
    snap = r.json()
    assert len(snap["snapshot_id"]) == 64 and snap["partial"] is False
    target = tmp_path / "target"
    r = run("restore", "latest", "--target", str(target), "--verify")
    assert r.code == 0, r.err + r.out
    assert_trees_equal(src, _restored(target, src), check_owner=os.geteuid() == 0)
    # the check detects nothing wrong in a healthy repository, also reading all data
    r = run("check", "--read-data")
    assert r.code == 0, r.out + r.err


def test_restore_is_resumable_and_skips_complete_files(tmp_path: Path, run) -> None:
    src = tmp_path / "src"
    make_torture_tree(src)
    run("init")
    assert run("backup", str(src)).code == 0
    target = tmp_path / "t"
    assert run("restore", "latest", "--target", str(target)).code == 0
    restored = _restored(target, src)
    # simulate an interrupted restore: one file missing, a partial temp file left behind
    victim = next(
        p for p in restored.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size > 100
    )
    victim.unlink()
    (victim.parent / f".{victim.name}.safehold-partial").write_bytes(b"garbage")
    r = run("restore", "latest", "--target", str(target), "--json")
    assert r.code == 0, r.err
    stats = r.json()["stats"]
    assert stats["files"] == 1, stats  # only the missing file was written again
    assert stats["files_skipped"] > 10
    assert not (victim.parent / f".{victim.name}.safehold-partial").exists()
    assert compare_trees(src, restored, check_owner=False) == []


def test_subpath_include_exclude(tmp_path: Path, run) -> None:
    src = tmp_path / "app"
    (src / "code").mkdir(parents=True)
    (src / "code" / "a.php").write_text("a")
    (src / "code" / "b.log").write_text("b")
    (src / "uploads").mkdir()
    (src / "uploads" / "x.jpg").write_bytes(b"x" * 10)
    run("init")
    run("backup", str(src))
    t1 = tmp_path / "t1"
    assert run("restore", f"latest:{src}/code", "--target", str(t1)).code == 0
    assert sorted(p.name for p in t1.iterdir()) == ["a.php", "b.log"]
    t2 = tmp_path / "t2"
    assert run("restore", "latest", "--target", str(t2), "--exclude", "*.log").code == 0
    assert (t2 / str(src).lstrip("/") / "code" / "a.php").exists()
    assert not (t2 / str(src).lstrip("/") / "code" / "b.log").exists()
    t3 = tmp_path / "t3"
    assert run("restore", "latest", "--target", str(t3), "--include", "uploads/").code == 0
    assert (t3 / str(src).lstrip("/") / "uploads" / "x.jpg").read_bytes() == b"x" * 10
    assert not (t3 / str(src).lstrip("/") / "code").exists()


def test_overwrite_policies(tmp_path: Path, run) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("original")
    run("init")
    run("backup", str(src))
    target = tmp_path / "t"
    dest = target / str(src).lstrip("/") / "f"
    dest.parent.mkdir(parents=True)
    dest.write_text("local edit")
    assert run("restore", "latest", "--target", str(target), "--overwrite", "never").code == 0
    assert dest.read_text() == "local edit"
    assert run("restore", "latest", "--target", str(target)).code == 0  # if-changed: size/mtime differ
    assert dest.read_text() == "original"
    dest.write_text("xxxxxxxx")
    os.utime(dest, ns=(src.joinpath("f").stat().st_atime_ns, src.joinpath("f").stat().st_mtime_ns))
    assert run("restore", "latest", "--target", str(target), "--overwrite", "always").code == 0
    assert dest.read_text() == "original"


def test_ls_diff_snapshots_cat(tmp_path: Path, run) -> None:
    src = tmp_path / "d"
    src.mkdir()
    (src / "keep").write_text("k")
    (src / "gone").write_text("g")
    run("init")
    a = run("backup", str(src), "--json", "--tag", "first").json()["snapshot_id"]
    (src / "gone").unlink()
    (src / "new").write_text("n")
    (src / "keep").write_text("changed")
    b = run("backup", str(src), "--json").json()["snapshot_id"]
    listing = run("ls", a[:8], "--json").json()
    assert any(e["path"].endswith("/d/gone") for e in listing)
    d = run("diff", a, b, "--json").json()
    kinds = {(c["kind"], c["path"].rsplit("/", 1)[1]) for c in d["changes"]}
    assert {("-", "gone"), ("+", "new"), ("M", "keep")} <= kinds
    snaps = run("snapshots", "--json").json()
    assert [s["id"] for s in snaps] == [a, b] and snaps[0]["tags"] == ["first"]
    assert run("snapshots", "--tag", "first", "--json").json()[0]["id"] == a
    cfg = run("cat", "config").json()
    assert cfg["version"] == 1 and cfg["chunker_seed"] == "(secret)"
    assert run("cat", "snapshot", b[:10]).json()["id"] == b


def test_torture_tree_round_trip_through_restore_helpers(tmp_path: Path, run, repo_path: Path) -> None:
    """The helper-process path (large restores) restores every attribute exactly as the in-process one."""
    from safehold.backends.local import LocalBackend
    from safehold.engine.format.repository import Repository
    from safehold.engine.format.tree import DIR, Node
    from safehold.engine.restore.restorer import Restorer
    from tests.helpers.fixtures import PASSWORD

    src = tmp_path / "src"
    make_torture_tree(src, big_file_mib=20)
    assert run("init").code == 0
    assert run("backup", str(src)).code == 0
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    snap = repo.find_snapshot("latest")
    target = tmp_path / "target"
    stats = Restorer(repo, helpers_from=0).restore(
        Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree)), os.fsencode(target)
    )
    assert stats.errors == [], stats.errors
    assert_trees_equal(src, _restored(target, src), check_owner=os.geteuid() == 0)
    assert not list(target.rglob("*.safehold-partial"))


def test_verify_checks_what_the_restore_selected_and_nothing_else(tmp_path: Path, run) -> None:
    """Restore and --verify select files with the same walk (git's rule: a file below an excluded
    folder stays excluded even if a later pattern names it), so --verify does not report a file the
    restore skipped on purpose; a file that was restored and then changed is still reported."""
    src = tmp_path / "src"
    (src / "build").mkdir(parents=True)
    (src / "build" / "keep.txt").write_bytes(b"k" * 5000)
    (src / "build" / "other.o").write_bytes(b"o" * 5000)
    (src / "app.php").write_bytes(b"<?php echo 1;" * 100)
    run("init")
    assert run("backup", str(src)).code == 0
    target = tmp_path / "t"
    sel = ["--exclude", "build/", "--exclude", "!build/keep.txt"]
    r = run("restore", "latest", "--target", str(target), *sel, "--verify")
    assert r.code == 0, r.err + r.out
    restored = _restored(target, src)
    assert (
        not (restored / "build").exists()
        and (restored / "app.php").read_bytes() == (src / "app.php").read_bytes()
    )
    (restored / "app.php").write_bytes(b"<?php echo 2;" * 100)
    r = run("restore", "latest", "--target", str(target), *sel, "--verify", "--overwrite", "never")
    assert r.code != 0 and "app.php" in r.err + r.out
