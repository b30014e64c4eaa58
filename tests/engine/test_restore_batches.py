"""Restores in batches: every batch bounded, helper processes started once, identical trees, progress totals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blake3
import pytest

from safehold.engine.format.pack import TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, Node, decode_tree
from safehold.engine.restore import filecontents
from safehold.engine.restore.restorer import Restorer
from safehold.operations.backup.paths import BackupOptions, backup_paths
from tests.helpers.treecompare import assert_trees_equal

NO_HELPERS = 10**9


def _make_tree(src: Path) -> None:
    """300 small files in 6 folders, 3 files of several chunks (one twice: same blobs in two files), an
    empty file, hard links across folders (one inode with three names) and a symlink."""
    for d in range(6):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(50):
            (src / f"d{d}" / f"f{i:03}").write_bytes(b"%d/%d " % (d, i) * (i * 7 + d))
    big = blake3.blake3(b"big").digest(length=5 << 20)
    (src / "d1" / "big1").write_bytes(big)
    (src / "d4" / "big1-copy").write_bytes(big)
    (src / "d5" / "big2").write_bytes(blake3.blake3(b"big2").digest(length=3 << 20))
    (src / "d2" / "empty").write_bytes(b"")
    os.link(src / "d0" / "f001", src / "d3" / "link-to-d0-f001")
    os.link(src / "d0" / "f001", src / "d5" / "second-link")
    os.link(src / "d5" / "big2", src / "d0" / "big2-link")
    os.symlink("../d0/f002", src / "d2" / "sym")
    os.utime(
        src / "d2" / "sym", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000), follow_symlinks=False
    )


def _distinct_files(src: Path) -> tuple[int, int]:
    """Regular files of ``src`` (a hard-linked inode once) and their bytes."""
    inodes = {}
    for p in src.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink():
            inodes[(st.st_dev, st.st_ino)] = st.st_size
    return len(inodes), sum(inodes.values())


@pytest.fixture
def snapshot(tmp_path: Path, repo: Repository) -> tuple[Path, Node]:
    src = tmp_path / "src"
    _make_tree(src)
    snap = backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False)).snapshot
    return src, Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))


def _restored(target: Path, src: Path) -> Path:
    return target / str(src).lstrip("/")


class _Recorder:
    """A progress that wants totals and records everything it is told."""

    wants_totals = True

    def __init__(self) -> None:
        self.starts: list[tuple[str, int | None, int | None]] = []
        self.files = self.nbytes = self.finishes = 0
        self.warnings: list[str] = []

    def start(self, phase: str, total_files: int | None = None, total_bytes: int | None = None) -> None:
        self.starts.append((phase, total_files, total_bytes))

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        self.files += files
        self.nbytes += nbytes

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def finish(self) -> None:
        self.finishes += 1


def _spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[list[Any]], list[bool], list[int]]:
    """Record each batch's jobs and whether it ran in helpers; count helper processes started/closed."""
    batches: list[list[Any]] = []
    with_helpers: list[bool] = []
    helpers = [0, 0]
    real = Restorer._restore_contents

    def contents(self: Restorer, jobs: list[Any]) -> None:
        if jobs:
            batches.append(list(jobs))
            with_helpers.append(self._helpers is not None)  # as the batch begins
        real(self, jobs)

    class CountingExtractor(filecontents.ExtractorProcess):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            helpers[0] += 1

        def close(self) -> None:
            helpers[1] += 1
            super().close()

    monkeypatch.setattr(Restorer, "_restore_contents", contents)
    monkeypatch.setattr(filecontents, "ExtractorProcess", CountingExtractor)
    return batches, with_helpers, helpers


@pytest.mark.parametrize("helpers_from", [NO_HELPERS, 0, 40])
def test_round_trip_in_tiny_batches(
    tmp_path: Path,
    repo: Repository,
    snapshot: tuple[Path, Node],
    monkeypatch: pytest.MonkeyPatch,
    helpers_from: int,
) -> None:
    src, root = snapshot
    batches, with_helpers, helpers = _spy(monkeypatch)
    target = tmp_path / "target"
    r = Restorer(repo, restore_owner=False, workers=2, helpers_from=helpers_from, batch_files=7)
    stats = r.restore(root, os.fsencode(target))
    assert stats.errors == [], stats.errors
    assert_trees_equal(src, _restored(target, src), check_owner=False)
    assert not list(target.rglob("*.safehold-partial"))
    files, _ = _distinct_files(src)
    assert stats.files == files + 3  # the 3 extra hard-link names are made after the contents
    # the plan of a batch is bounded, and all batches together restored every file once
    assert len(batches) == -(-files // 7)
    assert max(len(b) for b in batches) <= 7
    assert sum(len(b) for b in batches) == files
    if helpers_from == NO_HELPERS:
        assert helpers == [0, 0] and not any(with_helpers)
    else:  # started once, when the walk had planned helpers_from files, kept for every later batch, closed
        assert helpers == [2, 2]
        first = next(i for i, planned in enumerate(_running_totals(batches)) if planned >= helpers_from)
        # the batch before it was restored while the walk planned that file: it may begin either way
        assert with_helpers[first:] == [True] * (len(batches) - first)
        assert not any(with_helpers[: max(0, first - 1)])
        assert r._started == [] and r._helpers is None


def _running_totals(batches: list[list[Any]]) -> list[int]:
    out, n = [], 0
    for b in batches:
        n += len(b)
        out.append(n)
    return out


def test_blob_bound_cuts_batches(
    tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node], monkeypatch
) -> None:
    src, root = snapshot
    # The chunker's seed is random per repository: bound the batches just below the largest file's blobs.
    bound = _most_blobs(repo, root.subtree) - 1
    assert bound >= 1
    batches, _, _ = _spy(monkeypatch)
    target = tmp_path / "target"
    stats = Restorer(repo, restore_owner=False, helpers_from=NO_HELPERS, batch_blobs=bound).restore(
        root, os.fsencode(target)
    )
    assert stats.errors == []
    assert_trees_equal(src, _restored(target, src), check_owner=False)
    assert len(batches) >= 250 // bound  # ~300 one-blob files
    for b in batches:  # a batch is cut as soon as it reaches the bound: only its last file crosses it
        assert sum(len(j.node.content) for j in b[:-1]) < bound
    assert max(len(j.node.content) for b in batches for j in b) > bound  # a file is never split


def _most_blobs(repo: Repository, tree: bytes | None) -> int:
    nodes = decode_tree(repo.load_blob(TREE, tree)) if tree else []
    return max((max(len(n.content), _most_blobs(repo, n.subtree)) for n in nodes), default=0)


def test_default_bounds_are_one_batch_without_helpers_for_a_small_restore(
    tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node], monkeypatch
) -> None:
    _, root = snapshot
    batches, with_helpers, helpers = _spy(monkeypatch)
    Restorer(repo, restore_owner=False, workers=2).restore(root, os.fsencode(tmp_path / "t"))
    # 300+ files: one batch, in this process (helper processes start from HELPERS_FROM files)
    assert len(batches) == 1 and with_helpers == [False] and helpers == [0, 0]


def test_progress_totals_and_advances(tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node]) -> None:
    src, root = snapshot
    files, nbytes = _distinct_files(src)
    target = tmp_path / "target"
    for helpers_from in (NO_HELPERS, 0):
        progress = _Recorder()
        r = Restorer(repo, restore_owner=False, progress=progress, helpers_from=helpers_from, batch_files=16)
        stats = r.restore(root, os.fsencode(target))
        assert stats.errors == []
        assert progress.starts == [("restore", files, nbytes)] and progress.finishes == 1
        assert (progress.files, progress.nbytes) == (files, nbytes)
    assert stats.files_skipped >= files  # the second run wrote nothing: all advanced as skipped
    # some files missing: written again, the rest skipped, the bar still reaches its totals
    out = _restored(target, src)
    for p in [*sorted(out.glob("d3/f0*"))[:5], out / "d1" / "big1"]:
        p.unlink()
    progress = _Recorder()
    stats = Restorer(repo, restore_owner=False, progress=progress, batch_files=16).restore(
        root, os.fsencode(target)
    )
    assert stats.errors == [] and stats.files == 6
    assert progress.starts == [("restore", files, nbytes)]
    assert (progress.files, progress.nbytes) == (files, nbytes)
    assert_trees_equal(src, _restored(target, src), check_owner=False)


def test_progress_totals_follow_the_patterns(
    tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node]
) -> None:
    src, root = snapshot
    progress = _Recorder()
    r = Restorer(repo, restore_owner=False, progress=progress, batch_files=5)
    stats = r.restore(root, os.fsencode(tmp_path / "t"), excludes=["d1/", "d4/", "f00*"])
    assert stats.errors == []
    kept = [
        p for p in src.rglob("*") if p.is_file() and not p.is_symlink() and p.parent.name not in ("d1", "d4")
    ]
    kept = [p for p in kept if not p.name.startswith("f00")]
    inodes = {(p.stat().st_dev, p.stat().st_ino): p.stat().st_size for p in kept}
    assert progress.starts == [("restore", len(inodes), sum(inodes.values()))]
    assert (progress.files, progress.nbytes) == (len(inodes), sum(inodes.values()))


def test_no_totals_without_wants_totals(
    tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node]
) -> None:
    _, root = snapshot
    progress = _Recorder()
    progress.wants_totals = False
    Restorer(repo, restore_owner=False, progress=progress, batch_files=50).restore(
        root, os.fsencode(tmp_path / "t")
    )
    assert progress.starts == [("restore", None, None)] and progress.finishes == 1


def test_interrupted_restore_stops_helpers(
    tmp_path: Path, repo: Repository, snapshot: tuple[Path, Node], monkeypatch
) -> None:
    """An exception in a later batch (here a KeyboardInterrupt) still closes the helpers of earlier ones."""
    _, root = snapshot
    batches, _, helpers = _spy(monkeypatch)
    spied = Restorer._restore_contents

    def interrupted(self: Restorer, jobs: list[Any]) -> None:
        if len(batches) == 3:
            raise KeyboardInterrupt
        spied(self, jobs)

    monkeypatch.setattr(Restorer, "_restore_contents", interrupted)
    progress = _Recorder()
    with pytest.raises(KeyboardInterrupt):
        Restorer(
            repo, restore_owner=False, progress=progress, workers=2, helpers_from=0, batch_files=10
        ).restore(root, os.fsencode(tmp_path / "t"))
    assert helpers == [2, 2] and progress.finishes == 1
