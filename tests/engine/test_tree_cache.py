"""Unchanged folders are stored as the same tree without building their nodes; every change is still seen.

The oracle: a backup that uses no cache builds every tree from scratch, so right after a cached backup of
the same tree it must give the same root tree id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from safehold.backends.base import FileType, Handle
from safehold.engine.backup import archiver as archiver_mod
from safehold.engine.backup.filescache import FilesCache
from safehold.engine.format.indexfile import decode_index, encode_index
from safehold.engine.format.pack import TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import decode_tree
from safehold.operations.backup.paths import BackupOptions, backup_paths


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEHOLD_CACHE_DIR", str(tmp_path / "cache"))


def _tree(root: Path) -> None:
    for d in ("a", "a/b", "a/b/c", "d", "empty"):
        (root / d).mkdir(parents=True)
    for i, d in enumerate(("a", "a/b", "a/b/c", "d", ".")):
        for f in range(5):
            (root / d / f"f{f}.txt").write_bytes(os.urandom(100 + 37 * i + f))
    (root / "d" / "link").symlink_to("../a/f0.txt")
    os.setxattr(root / "a" / "f1.txt", "user.tag", b"v1")
    os.mkfifo(root / "d" / "fifo")
    old = time.time_ns() - 10**10  # before the backups start; atime after mtime (relatime leaves it)
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            os.utime(os.path.join(dirpath, n), ns=(old + 5, old), follow_symlinks=False)
    time.sleep(0.05)  # a clock tick after the ctime, so that
    os.readlink(root / "d" / "link")  # relatime moves the link's atime now, not in the first backup


def _backup(repo: Repository, src: Path, *, cache: bool = True) -> tuple[bytes, dict[str, int]]:
    """The tree id of ``src``'s contents in a new snapshot (the folders above it change meanwhile:
    they are other tests' and the system's), and the snapshot's summary."""
    res = backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=cache))
    assert not res.errors
    tree: bytes | None = bytes.fromhex(res.snapshot.tree)
    for part in os.fsencode(src).strip(b"/").split(b"/"):
        assert tree is not None
        tree = next(n for n in decode_tree(repo.load_blob(TREE, tree)) if n.name == part).subtree
    assert tree is not None
    return tree, res.snapshot.summary


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Names of the entries for which a backup built a node (node_from_stat)."""
    names: list[bytes] = []
    real = archiver_mod.node_from_stat

    def spy(name: bytes, path: bytes, st: os.stat_result) -> object:
        names.append(name)
        return real(name, path, st)

    monkeypatch.setattr(archiver_mod, "node_from_stat", spy)
    return names


def test_unchanged_folders_are_reused_without_building_file_nodes(
    repo: Repository, tmp_path: Path, built: list[bytes]
) -> None:
    src = tmp_path / "src"
    _tree(src)
    first, _ = _backup(repo, src)
    built.clear()
    second, summary = _backup(repo, src)
    assert second == first
    assert not [n for n in built if n.startswith(b"f") or n in (b"link", b"fifo")]  # only folders
    assert summary["files"] == summary["files_cached"] == 25 and summary["other"] == 2
    assert _backup(repo, src, cache=False)[0] == first


def _rewrite_same_size(p: Path) -> None:
    st = p.stat()
    p.write_bytes(os.urandom(st.st_size))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime as before: only the ctime tells


def _retarget(p: Path) -> None:
    p.unlink()
    p.symlink_to("../a/f2.txt")
    time.sleep(0.05)
    os.readlink(p)  # settle the new link's atime (see _tree)


CHANGES: dict[str, Callable[[Path], None]] = {
    "content, same size and mtime": lambda s: _rewrite_same_size(s / "a/b/c/f3.txt"),
    "mode": lambda s: os.chmod(s / "a/b/f0.txt", 0o600),
    "xattr": lambda s: os.setxattr(s / "a/f1.txt", "user.tag", b"v2"),
    "xattr on a folder": lambda s: os.setxattr(s / "a/b", "user.tag", b"x"),
    "atime (a read: only the atime moves)": lambda s: (s / "d/f2.txt").read_bytes(),
    "owner": lambda s: os.chown(s / "a/b/c/f0.txt", 1234, 5678),
    "rename": lambda s: (s / "a/b/c/f4.txt").rename(s / "a/b/c/g4.txt"),
    "delete": lambda s: (s / "a/b/c/f1.txt").unlink(),
    "add": lambda s: (s / "a/b/c/new.txt").write_bytes(b"new"),
    "new empty folder": lambda s: (s / "empty/sub").mkdir(),
    "symlink retargeted": lambda s: _retarget(s / "d/link"),
    "fifo replaced by a file": lambda s: ((s / "d/fifo").unlink(), (s / "d/fifo").write_bytes(b"")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_is_seen(repo: Repository, tmp_path: Path, change: str) -> None:
    src = tmp_path / "src"
    _tree(src)
    first, _ = _backup(repo, src)
    assert _backup(repo, src)[0] == first
    CHANGES[change](src)
    changed, _ = _backup(repo, src)
    assert changed != first
    assert _backup(repo, src, cache=False)[0] == changed  # the same as built from scratch
    assert _backup(repo, src)[0] == changed


def test_after_an_index_file_is_replaced_rows_are_checked_blob_by_blob_once(
    repo: Repository, tmp_path: Path, built: list[bytes]
) -> None:
    src = tmp_path / "src"
    _tree(src)
    first, _ = _backup(repo, src)
    # What prune or repair does: the same entries under a new index file, the old one removed.
    for fi in list(repo.backend.list(FileType.INDEX)):
        records = decode_index(repo.load_file(FileType.INDEX, fi.name))
        repo.save_file(FileType.INDEX, encode_index(records))
        repo.backend.remove(Handle(FileType.INDEX, fi.name))
    fresh = Repository.open(repo.backend, "correct horse battery staple")
    built.clear()
    second, summary = _backup(fresh, src)
    assert second == first and summary["files_cached"] == 25  # rows used, each blob looked up
    assert b"f3.txt" in built  # folders were not taken whole
    built.clear()
    assert _backup(fresh, src)[0] == first
    assert b"f3.txt" not in built  # and are again from the next backup on


def test_cache_rows_of_a_backup_that_did_not_commit_are_never_trusted(tmp_path: Path) -> None:
    key, path, old = os.urandom(32), tmp_path / "fc.sqlite", time.time_ns() - 10**10
    ids = [os.urandom(32)]
    ok = FilesCache(path, key, time.time_ns())
    ok.bind_index(["i1"])
    ok.record(b"/d", b"kept", 1, old, old, 1, ids)
    ok.record_tree(b"/d", b"D" * 32, b"T" * 32)
    ok.commit(["i1"])
    ok.close()
    failed = FilesCache(path, key, time.time_ns())
    failed.bind_index(["i1"])
    failed.record(b"/d", b"lost", 1, old, old, 2, ids)
    failed.record_tree(b"/e", b"E" * 32, b"U" * 32)
    failed._write()  # rows reach the file mid-backup, then the backup dies before its snapshot
    failed.close()
    c = FilesCache(path, key, time.time_ns())
    c.bind_index(["i1", "i2"])  # index files were only added: rows of committed backups are trusted
    rows = c.lookup_dir(b"/d")
    assert rows[b"kept"][5] is True and rows[b"lost"][5] is False
    assert c.lookup_tree(b"/d", b"D" * 32) == b"T" * 32
    assert c.lookup_tree(b"/d", b"X" * 32) is None  # another digest
    assert c.lookup_tree(b"/e", b"E" * 32) is None
    c.commit(["i1", "i2"])
    c.close()
    after = FilesCache(path, key, time.time_ns())
    after.bind_index(["i1", "i2"])
    assert b"lost" not in after.lookup_dir(b"/d") and after.lookup_tree(b"/e", b"E" * 32) is None
    after.bind_index(["i2"])  # i1 is gone: nothing is trusted
    assert after.lookup_tree(b"/d", b"D" * 32) is None and after.lookup_dir(b"/d")[b"kept"][5] is False
    after.bind_index(["i1", "i2"])
    after._db.execute("UPDATE trees SET tree=? WHERE dir=?", (b"V" * 32, b"/d"))
    assert after.lookup_tree(b"/d", b"D" * 32) is None  # the MAC no longer matches
    after.close()


def test_a_folder_with_a_recent_timestamp_is_not_recorded(
    repo: Repository, tmp_path: Path, built: list[bytes]
) -> None:
    src = tmp_path / "src"
    _tree(src)
    (src / "a" / "b" / "c" / "f0.txt").write_bytes(b"written just now")  # mtime: now, the backup's start
    now = time.time_ns() + 10**10
    os.utime(src / "a" / "b" / "c" / "f0.txt", ns=(now, now))  # not older than the next backup either
    _backup(repo, src)
    built.clear()
    _backup(repo, src)
    assert b"f1.txt" in built and b"f0.txt" in built  # folder c read file by file again
