"""Round trip of the torture tree through the fs layer, and proof that compare_trees catches every kind
of difference it claims to check (a comparison that cannot fail would make every round-trip test moot)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import torture
from tests.helpers.torture import make_torture_tree
from tests.helpers.treecompare import assert_trees_equal, compare_trees

from .copier import copy_tree

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("torture") / "src"
    make_torture_tree(root, big_file_mib=4)
    return root


def test_torture_tree_has_everything(source: Path) -> None:
    assert {"big", "sparse"} <= torture.FEATURES  # socket, xattrs, devices depend on the platform
    names = {
        os.path.relpath(os.path.join(d, n), os.fsencode(source))
        for d, ds, fs in os.walk(os.fsencode(source))
        for n in ds + fs
    }
    for must in (
        b"caf\xe9",
        "日本/ファイル.txt".encode(),
        b"links/dangling",
        b"special/fifo",
        b"readonly/inside.txt",
    ):
        assert must in names
    assert stat.S_IMODE(os.lstat(source / "readonly").st_mode) == 0o555
    assert os.lstat(source / "hl-a" / "triple").st_nlink == 3
    sparse = os.lstat(source / "sparse.img")
    assert sparse.st_size == torture.SPARSE_SIZE and sparse.st_blocks * 512 < 1 << 20
    assert os.lstat(source / "modes" / "setuid").st_mtime_ns % 1000 != 0  # ns precision


def test_round_trip_through_fs_layer_is_exact(source: Path, tmp_path: Path) -> None:
    warnings = copy_tree(source, tmp_path / "copy")
    assert warnings == []
    assert_trees_equal(source, tmp_path / "copy", check_owner=True, check_atime=True, check_root=True)
    # The restored sparse file is sparse too.
    assert os.lstat(tmp_path / "copy" / "sparse.img").st_blocks * 512 < 1 << 20


def test_identical_trees_compare_equal_with_cp(source: Path, tmp_path: Path) -> None:
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(tmp_path / "cp")], check=True)
    assert compare_trees(source, tmp_path / "cp", check_owner=True) == []


def _keep_parent_mtime(path: Path, change: Callable[[], object]) -> None:
    """Run ``change`` and then put the parent folder's times back, so only the intended difference shows."""
    parent = os.lstat(path.parent)
    change()
    os.utime(path.parent, ns=(parent.st_atime_ns, parent.st_mtime_ns))


def _rewrite(path: Path, data: bytes) -> None:
    st = os.lstat(path)
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _break_hardlink(path: Path) -> None:
    st = os.lstat(path)
    data = path.read_bytes()
    xattrs = [(n, os.getxattr(path, n)) for n in os.listxattr(path)]
    path.unlink()
    path.write_bytes(data)
    for n, v in xattrs:
        os.setxattr(path, n, v)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _make_dense(path: Path) -> None:
    st = os.lstat(path)
    data = path.read_bytes()
    path.unlink()
    with open(path, "wb") as f:
        f.write(data)  # every zero written: fully allocated
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _new_link_target(path: Path) -> None:
    st = os.lstat(path)
    path.unlink()
    os.symlink("../somewhere/else", path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _swap_device(path: Path) -> None:
    st = os.lstat(path)
    path.unlink()
    os.mknod(path, stat.S_IFCHR | stat.S_IMODE(st.st_mode), os.makedev(1, 5))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


MUTATIONS: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("mode", "modes/private", lambda p: os.chmod(p, 0o640), "mode 0o600 != 0o640"),
    ("setuid lost", "modes/setuid", lambda p: os.chmod(p, 0o755), "mode 0o4755 != 0o755"),
    ("mtime", "data/one-byte", lambda p: os.utime(p, ns=(1, 2)), "mtime_ns"),
    ("dir mtime", "nested/level1", lambda p: os.utime(p, ns=(1, 2)), "mtime_ns"),
    ("symlink mtime", "links/relative", lambda p: os.utime(p, ns=(1, 2), follow_symlinks=False), "mtime_ns"),
    (
        "content same size",
        "data/small-random.bin",
        lambda p: _rewrite(p, b"\x00" * 1000),
        "content differs at byte",
    ),
    ("size", "data/small-text.txt", lambda p: _rewrite(p, b"short"), "size 10000 != 5"),
    (
        "xattr value",
        "data/small-text.txt",
        lambda p: os.setxattr(p, "user.safehold.comment", b"HELLO"),
        "xattrs",
    ),
    ("xattr removed", "data", lambda p: os.removexattr(p, "user.safehold.dir"), "xattrs"),
    ("hard link broken", "hl-b/triple-2", _break_hardlink, "hard links"),
    ("sparseness", "sparse.img", _make_dense, "not sparse"),
    ("symlink target", "links/dangling", _new_link_target, "symlink target"),
    ("type", "zero.bin", _replace_with_dir, "type file != dir"),
]


@pytest.fixture(scope="module")
def pristine_copy(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("pristine") / "copy"
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(dst)], check=True)
    return dst


def _fresh_copy(pristine: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    subprocess.run(["cp", "-a", "--sparse=always", str(pristine), str(dst)], check=True)
    return dst


@pytest.mark.parametrize(("what", "rel", "mutate", "expect"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_compare_detects(
    source: Path,
    pristine_copy: Path,
    tmp_path: Path,
    what: str,
    rel: str,
    mutate: Callable[[Path], None],
    expect: str,
) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    assert compare_trees(source, copy, check_owner=True) == []
    target = copy / rel
    _keep_parent_mtime(target, lambda: mutate(target))
    diffs = compare_trees(source, copy, check_owner=True)
    assert diffs, f"{what}: difference not detected"
    assert any(d.startswith(rel) and expect in d for d in diffs), diffs
    with pytest.raises(AssertionError, match="trees differ"):
        assert_trees_equal(source, copy, check_owner=True)


def test_compare_detects_missing_and_extra_and_reports_all(
    source: Path, pristine_copy: Path, tmp_path: Path
) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    _keep_parent_mtime(copy / "data" / "one-byte", (copy / "data" / "one-byte").unlink)
    _keep_parent_mtime(copy / "data" / "new", lambda: (copy / "data" / "new").write_bytes(b""))
    _keep_parent_mtime(copy / "modes" / "open", lambda: os.chmod(copy / "modes" / "open", 0o700))
    diffs = compare_trees(source, copy, check_owner=False)
    assert "data/one-byte: missing in b" in diffs
    assert "data/new: unexpected in b" in diffs
    assert "modes/open: mode 0o777 != 0o700" in diffs
    assert len(diffs) == 3


def test_compare_non_utf8_names(source: Path, pristine_copy: Path, tmp_path: Path) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    raw = os.path.join(os.fsencode(copy), b"caf\xe9")
    _keep_parent_mtime(
        Path(os.fsdecode(raw)), lambda: os.rename(raw, os.path.join(os.fsencode(copy), b"caf\xc3\xa9"))
    )
    diffs = compare_trees(source, copy, check_owner=False)
    assert any("missing in b" in d and "caf\\xe9" in d for d in diffs), diffs
    assert any(d.startswith("café: unexpected") for d in diffs), diffs


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_compare_detects_owner_only_when_asked(source: Path, pristine_copy: Path, tmp_path: Path) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    target = copy / "data" / "one-byte"
    os.chown(target, 1234, 1234)
    os.chmod(target, stat.S_IMODE(os.lstat(source / "data" / "one-byte").st_mode))
    assert compare_trees(source, copy, check_owner=False) == []
    assert any("owner" in d for d in compare_trees(source, copy, check_owner=True))


def test_compare_detects_atime_only_when_asked(source: Path, pristine_copy: Path, tmp_path: Path) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    target = copy / "data" / "one-byte"
    st = os.lstat(target)
    os.utime(target, ns=(st.st_atime_ns + 1, st.st_mtime_ns))
    assert compare_trees(source, copy, check_owner=False) == []
    assert any("atime_ns" in d for d in compare_trees(source, copy, check_owner=False, check_atime=True))


def test_compare_detects_root_metadata_only_when_asked(
    source: Path, pristine_copy: Path, tmp_path: Path
) -> None:
    copy = _fresh_copy(pristine_copy, tmp_path)
    os.chmod(copy, 0o711)
    assert compare_trees(source, copy, check_owner=False) == []
    assert any(
        d.startswith(".: mode") for d in compare_trees(source, copy, check_owner=False, check_root=True)
    )


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_compare_detects_device_number(source: Path, pristine_copy: Path, tmp_path: Path) -> None:
    if "chardev" not in torture.FEATURES:
        pytest.skip("no device node in the torture tree")
    copy = _fresh_copy(pristine_copy, tmp_path)
    target = copy / "special" / "chardev"
    _keep_parent_mtime(target, lambda: _swap_device(target))
    assert any("device number" in d for d in compare_trees(source, copy, check_owner=True))
