"""Restore never follows a symlink it did not create: symlinks planted below the restore target (where a
folder, a file or a temporary file goes), a FIFO or a pre-created file at the old temporary name, and a
folder swapped for a symlink while the restore runs. Through ``restore --target`` (the engine, the
operation and the real CLI) and a component restore (``files`` kind), in this process and in restore
helpers. Every test proves that nothing outside the target was created, changed or chmod-ed (sentinel
fingerprint)."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, Node
from safehold.engine.restore.filecontents import RestoreStats
from safehold.engine.restore.restorer import Restorer
from safehold.errors import SafeholdError
from safehold.operations.backup.components import EngineComponentReader
from safehold.sources.base import SourceContext
from safehold.sources.files import FilesSource
from tests.helpers.fixtures import Result
from tests.security.hostile import save_snapshot
from tests.security.sentinel import World

BIG = os.urandom(5 << 19)  # 2.5 MiB: stored in 512 KiB blobs, written piece by piece
#: The snapshot's tree below the restore target (``app/...``).
APP: list = [  # type: ignore[type-arg]
    (
        b"app",
        [
            (
                b"storage",
                [
                    (b"big.bin", BIG),
                    (b"logs", [(b"a.log", b"log line\n"), (b"b.log", b"")]),
                    (b"small.txt", b"small\n"),
                ],
            ),
            (b"top.txt", b"top\n"),
        ],
    )
]
FOLDERS = ["app", "app/storage", "app/storage/logs"]
FILES = [
    "app/top.txt",
    "app/storage/small.txt",
    "app/storage/big.bin",
    "app/storage/logs/a.log",
    "app/storage/logs/b.log",
]
HELPERS = pytest.mark.parametrize("helpers", [False, True], ids=["in-process", "helpers"])


def _snapshot(repo: Repository) -> Node:
    snap = save_snapshot(repo, APP)
    return Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))


def _restore(repo: Repository, root: Node, world: World, helpers: bool, overwrite: str) -> RestoreStats:
    restorer = Restorer(repo, helpers_from=1 if helpers else 1 << 30, overwrite=overwrite)
    return restorer.restore(root, os.fsencode(world.target))


def _restored_completely(target: Path, below: str = "") -> None:
    base = target / below if below else target
    assert (base / "app" / "top.txt").read_bytes() == b"top\n"
    assert (base / "app" / "storage" / "big.bin").read_bytes() == BIG
    assert (base / "app" / "storage" / "small.txt").read_bytes() == b"small\n"
    assert (base / "app" / "storage" / "logs" / "a.log").read_bytes() == b"log line\n"
    for folder in FOLDERS:
        st = os.lstat(base / folder)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    leftovers = [p for p in base.rglob("*") if p.name.endswith(".safehold-partial")]
    assert leftovers == []


def _plant_folder_link(world: World, where: str, base: Path | None = None) -> Path:
    """Create the folders above ``where`` (below the target) and a symlink at ``where`` to outside/etc."""
    link = (base or world.target) / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(world.outside / "etc")
    return link


# ---- a symlink where a folder goes ------------------------------------------------------------------
@pytest.mark.parametrize("where", FOLDERS)
@HELPERS
def test_symlink_in_place_of_a_folder_is_refused(
    repo: Repository, world: World, where: str, helpers: bool
) -> None:
    root = _snapshot(repo)
    link = _plant_folder_link(world, where)
    stats = _restore(repo, root, world, helpers, "if-changed")
    (err,) = [e for e in stats.errors if "in the way" in e]
    assert err.startswith(f"{link}: a symlink is in the way of a folder"), stats.errors
    assert len(stats.errors) == 1, stats.errors  # once for the folder, not once per file below it
    assert os.readlink(link) == str(world.outside / "etc")  # left as it was
    # what is not below the symlink is restored
    if where != "app":
        assert (world.target / "app" / "top.txt").read_bytes() == b"top\n"
    world.assert_untouched()


@pytest.mark.parametrize("where", FOLDERS)
@HELPERS
def test_symlink_in_place_of_a_folder_is_replaced_with_overwrite_always(
    repo: Repository, world: World, where: str, helpers: bool
) -> None:
    root = _snapshot(repo)
    _plant_folder_link(world, where)
    stats = _restore(repo, root, world, helpers, "always")
    assert stats.errors == []
    _restored_completely(world.target)
    world.assert_untouched()


@HELPERS
def test_symlinks_at_every_depth_never_followed(repo: Repository, world: World, helpers: bool) -> None:
    # every file's place a symlink to a file outside (replaced: a symlink itself is what gets
    # overwritten), the deepest folder's place a symlink to a folder outside (refused)
    root = _snapshot(repo)
    for rel in FILES:
        p = world.target / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.parent.name == "logs" and not p.parent.is_symlink():
            p.parent.rmdir()
            _plant_folder_link(world, "app/storage/logs")
        if not p.parent.is_symlink():
            p.symlink_to(world.outside / "secret")
    stats = _restore(repo, root, world, helpers, "if-changed")
    assert len(stats.errors) == 1 and "logs: a symlink is in the way of a folder" in stats.errors[0]
    for rel in FILES[:3]:
        assert stat.S_ISREG(os.lstat(world.target / rel).st_mode)
    assert (world.target / "app" / "storage" / "big.bin").read_bytes() == BIG
    world.assert_untouched()


# ---- the temporary file's name --------------------------------------------------------------------
OLD_TEMP = ".{}.safehold-partial"  # the name every restore used before


@pytest.mark.parametrize("kind", ["symlink", "fifo", "file"])
@HELPERS
def test_planted_temporary_names_are_never_used(
    repo: Repository, world: World, kind: str, helpers: bool
) -> None:
    root = _snapshot(repo)
    storage = world.target / "app" / "storage"
    (storage / "logs").mkdir(parents=True)
    held: dict[str, tuple[int, int]] = {}
    for rel in FILES:
        p = world.target / rel
        tmp = p.parent / OLD_TEMP.format(p.name)
        if kind == "symlink":
            tmp.symlink_to(world.outside / "secret")
        elif kind == "fifo":
            os.mkfifo(tmp, 0o666)
        else:
            tmp.write_bytes(b"attacker's\n")
            os.chmod(tmp, 0o666)
            fd = os.open(tmp, os.O_WRONLY)  # the attacker keeps a descriptor open
            held[rel] = (fd, os.fstat(fd).st_ino)
    result: list[RestoreStats] = []
    t = threading.Thread(target=lambda: result.append(_restore(repo, root, world, helpers, "if-changed")))
    t.start()
    t.join(60)
    if t.is_alive():  # blocked on a FIFO: release it, then fail
        for rel in FILES:
            p = world.target / rel
            try:
                os.close(os.open(p.parent / OLD_TEMP.format(p.name), os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(60)
        pytest.fail("the restore blocked on a FIFO at a temporary file's name")
    (stats,) = result
    assert stats.errors == []
    for rel, (fd, ino) in held.items():  # the attacker's file never becomes the restored one
        os.pwrite(fd, b"EVIL", 0)
        os.close(fd)
        p = world.target / rel
        assert os.lstat(p).st_ino != ino and not p.read_bytes().startswith(b"EVIL")
    for rel in FILES:
        p = world.target / rel
        assert stat.S_ISREG(os.lstat(p).st_mode) and stat.S_IMODE(os.lstat(p).st_mode) == 0o644
    assert (world.target / "app" / "storage" / "big.bin").read_bytes() == BIG
    world.assert_untouched()


def test_temporary_names_are_unpredictable_and_left_nowhere(repo: Repository, world: World) -> None:
    """Every file is created new: under a new temporary name each time (``O_EXCL | O_NOFOLLOW``), except a
    file of one blob in a folder the restore itself created (the first run here), which is written
    unnamed (``O_TMPFILE``) and linked in under its final name once complete."""
    root = _snapshot(repo)
    temps: list[set[str]] = []
    unnamed: list[int] = []
    linked: list[set[str]] = []
    real_open, real_link = os.open, os.link
    names = {os.path.basename(f) for f in FILES}

    def spy(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        name = os.fsdecode(path)
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            unnamed[-1] += 1
        elif flags & os.O_CREAT and (name.endswith(".safehold-partial") or name in names):
            assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
            assert name.endswith(".safehold-partial")
            temps[-1].add(name)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def link_spy(src, dst, *, src_dir_fd=None, dst_dir_fd=None, follow_symlinks=True):  # type: ignore[no-untyped-def]
        linked[-1].add(os.fsdecode(dst))
        return real_link(
            src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=follow_symlinks
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", spy)
        mp.setattr(os, "link", link_spy)
        for _ in range(2):
            temps.append(set())
            unnamed.append(0)
            linked.append(set())
            assert _restore(repo, root, world, False, "always").errors == []
    # first run, every folder new: one-blob files unnamed, then linked in; the big one (pieces) and the
    # empty one under temporary names
    assert linked[0] == {"top.txt", "small.txt", "a.log"} and unnamed[0] == 3
    assert len(temps[0]) == 2
    assert linked[1] == set() and unnamed[1] == 0 and len(temps[1]) == len(FILES)  # the folders existed
    assert not temps[0] & temps[1]
    seen = temps[0] | temps[1]
    assert not any(n in seen for n in (OLD_TEMP.format(os.path.basename(f)) for f in FILES))
    _restored_completely(world.target)
    world.assert_untouched()


def test_direct_write_never_reuses_or_follows_what_is_at_the_name(tmp_path: Path) -> None:
    """A file of a folder the restore created meets something at its name after all: another's file is
    neither opened nor written into, a symlink is not followed; the finished file is linked in under a
    temporary name and renamed over it."""
    from safehold.engine.format.tree import FILE
    from safehold.engine.restore.extractor import file_meta, write_whole

    folder = tmp_path / "new"
    folder.mkdir(mode=0o700)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    (folder / "link.txt").symlink_to(outside)
    theirs = folder / "theirs.txt"
    theirs.write_bytes(b"theirs")
    held = os.open(theirs, os.O_RDWR)
    ino = os.fstat(held).st_ino
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in (b"link.txt", b"theirs.txt", b"fresh.txt"):
            node = Node(name=name, type=FILE, mode=0o640, mtime_ns=10**18, atime_ns=10**18, size=4)
            assert (
                write_whole(
                    dfd,
                    name,
                    b"data",
                    file_meta(node, False),
                    False,
                    bytes(folder) + b"/" + name,
                    direct=True,
                )
                == []
            )
    finally:
        os.close(dfd)
    assert outside.read_bytes() == b"keep"
    assert os.pread(held, 16, 0) == b"theirs" and os.fstat(held).st_ino == ino
    os.close(held)
    for name in ("link.txt", "theirs.txt", "fresh.txt"):
        st = os.lstat(folder / name)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == 10**18
        assert (folder / name).read_bytes() == b"data"
    assert os.lstat(folder / "theirs.txt").st_ino != ino
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.txt", "link.txt", "theirs.txt"]


def test_a_failed_direct_write_leaves_nothing_at_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from safehold.engine.format.tree import FILE
    from safehold.engine.restore import extractor

    def full(fd: int, data: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(extractor, "write_all", full)
    folder = tmp_path / "new"
    folder.mkdir(mode=0o700)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        node = Node(name=b"f.txt", type=FILE, mode=0o644, size=4)
        with pytest.raises(OSError):
            extractor.write_whole(
                dfd, b"f.txt", b"data", extractor.file_meta(node, False), False, b"f.txt", direct=True
            )
    finally:
        os.close(dfd)
    assert list(folder.iterdir()) == []


def test_unnamed_files_refused_fall_back_to_temporary_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where linking an unnamed file in is refused (no /proc, a restricted container), the file is written
    under a temporary name as elsewhere, and unnamed files are not tried again."""
    from safehold.engine.format.tree import FILE
    from safehold.engine.restore import extractor

    monkeypatch.setattr(extractor, "_UNNAMED", [True])
    real_link = os.link

    def refused(src, dst, **kw):  # type: ignore[no-untyped-def]
        if os.fsdecode(src).startswith("/proc/"):
            raise PermissionError(1, "Operation not permitted")
        return real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", refused)
    folder = tmp_path / "new"
    folder.mkdir(mode=0o700)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in (b"a.txt", b"b.txt"):
            node = Node(name=name, type=FILE, mode=0o600, mtime_ns=10**18, atime_ns=10**18, size=2)
            meta = extractor.file_meta(node, False)
            assert extractor.write_whole(dfd, name, b"ok", meta, False, name, direct=True) == []
    finally:
        os.close(dfd)
    assert extractor._UNNAMED == [False]
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    assert (folder / "a.txt").read_bytes() == b"ok" and (folder / "b.txt").stat().st_mtime_ns == 10**18


# ---- the operation, the real CLI ------------------------------------------------------------------
def test_cli_restore_target_refuses_a_planted_symlink(
    repo: Repository, run: Callable[..., Result], world: World
) -> None:
    snap = save_snapshot(repo, APP)
    link = _plant_folder_link(world, "app/storage")
    r = run("restore", snap.id, "--target", str(world.target))
    assert r.code != 0 and "Traceback" not in r.err
    assert f"{link}: a symlink is in the way of a folder" in r.out + r.err
    assert os.path.islink(link)
    r = run("restore", snap.id, "--target", str(world.target), "--overwrite", "always")
    assert r.code == 0, r.err
    _restored_completely(world.target)
    world.assert_untouched()


# ---- a component restore (files kind) --------------------------------------------------------------
def _component(repo: Repository) -> tuple[FilesSource, EngineComponentReader]:
    snap = save_snapshot(
        repo, [(b"web", [(b"srv", APP)])], components={"web": {"kind": "files", "status": "ok"}}
    )
    source = FilesSource("web", {"paths": ["/srv/app"]})
    return source, EngineComponentReader(repo, repo.find_snapshot(snap.id), "web")


NOBODY = 65534
#: Below the target root: the folders above the configured path (/srv/app), the path itself, below it.
COMPONENT_FOLDERS = ["srv", "srv/app", "srv/app/storage", "srv/app/storage/logs"]


def _plant_users_link(world: World, where: str) -> Path:
    link = _plant_folder_link(world, where)
    os.lchown(link, NOBODY, NOBODY)  # planted by an unprivileged user
    return link


@pytest.mark.parametrize("where", COMPONENT_FOLDERS)
@pytest.mark.parametrize("force", [False, True], ids=["refused", "force"])
@HELPERS
def test_component_restore_never_follows_a_planted_symlink(
    repo: Repository, world: World, where: str, force: bool, helpers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if helpers:
        monkeypatch.setitem(Restorer.__init__.__kwdefaults__, "helpers_from", 1)  # type: ignore[index]
    source, reader = _component(repo)
    link = _plant_users_link(world, where)
    ctx = SourceContext(force=force, options={"target_root": str(world.target)})
    # the plan says so first
    plan = source.restore(reader, dataclasses.replace(ctx, dry_run=True))
    (warning,) = plan.warnings
    assert warning.startswith(f"{link}: a symlink (to {world.outside / 'etc'}) is in the way of a folder")
    assert ("--force replaces it with the folder" in warning) == force
    if force:
        source.restore(reader, ctx)
        _restored_completely(world.target, "srv")
    else:
        with pytest.raises(SafeholdError, match=r"symlink .*is in the way of a folder") as exc:
            source.restore(reader, ctx)
        assert str(link) in str(exc.value)
        assert os.path.islink(link)
    world.assert_untouched()


def test_component_restore_follows_roots_own_symlinks_above_the_path(repo: Repository, world: World) -> None:
    # an administrator's symlink above the configured path (/srv -> /data/srv) is where the files live
    source, reader = _component(repo)
    real = world.target / "data-srv"
    real.mkdir()
    (world.target / "srv").symlink_to(real)
    ctx = SourceContext(options={"target_root": str(world.target)})
    assert source.restore(reader, dataclasses.replace(ctx, dry_run=True)).warnings == []
    source.restore(reader, ctx)
    _restored_completely(real)
    world.assert_untouched()


def test_folder_metadata_reapplied_at_the_end_never_through_a_symlink(repo: Repository, world: World) -> None:
    # a whole-server restore applies folder metadata again at the end: the folder swapped for a symlink
    # meanwhile is skipped, its target never chmod-ed
    source, reader = _component(repo)
    source.restore(reader, SourceContext(options={"target_root": str(world.target)}))
    storage = world.target / "srv" / "app" / "storage"
    os.rename(storage, world.target / "aside")
    storage.symlink_to(world.outside / "etc")
    os.chmod(world.outside / "etc", 0o700)
    world.before = world.fingerprint()
    EngineComponentReader.reapply_folder_metadata(
        [(os.fsencode(storage), Node(b"storage", DIR, 0o755, 0, 0))], restore_owner=True
    )
    EngineComponentReader.reapply_folder_metadata(reader.folders, restore_owner=True)
    world.assert_untouched()


# ---- a folder swapped for a symlink while the restore runs -----------------------------------------
SWAPPER = r"""
import os, sys, time
folder, link_to, end = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
aside = folder + ".aside"
print("ready", flush=True)
while time.monotonic() < end:
    try:
        os.rename(folder, aside)
        os.symlink(link_to, folder)
        time.sleep(0.0005)
        os.unlink(folder)
        os.rename(aside, folder)
    except OSError:
        time.sleep(0.0005)
"""


def _race(repo: Repository, world: World, tmp_path: Path, rounds: int, helpers: bool) -> None:
    # many small files in one folder, so that the restore keeps writing into it while it is swapped
    files = [(b"f%04d.txt" % i, b"data %d\n" % i) for i in range(600)]
    snap = save_snapshot(repo, [(b"app", [(b"storage", files)])])
    root = Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))
    for n in range(rounds):
        target = world.target / f"r{n}"
        storage = target / "app" / "storage"
        storage.mkdir(parents=True)  # exists before: the restore must open it, not create it
        swapper = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(storage), str(world.outside / "etc"), "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert swapper.stdout is not None and swapper.stdout.readline() == "ready\n"
            time.sleep(0.01)
            restorer = Restorer(repo, helpers_from=1 if helpers else 1 << 30, overwrite="if-changed")
            stats = restorer.restore(root, os.fsencode(target))
        finally:
            swapper.kill()
            swapper.wait()
            swapper.stdout.close()  # type: ignore[union-attr]
        # whatever the timing (refused, restored into the real folder, or failed because the folder the
        # restore created was replaced and removed), never through the symlink
        assert all(e.startswith(f"{storage}") for e in stats.errors), stats.errors
        world.assert_untouched()


@HELPERS
def test_folder_swapped_for_a_symlink_during_restore(
    repo: Repository, world: World, tmp_path: Path, helpers: bool
) -> None:
    _race(repo, world, tmp_path, 3, helpers)


@pytest.mark.slow
@HELPERS
def test_folder_swapped_for_a_symlink_during_restore_soak(
    repo: Repository, world: World, tmp_path: Path, helpers: bool
) -> None:
    _race(repo, world, tmp_path, 40, helpers)
