"""node_from_stat for every type, apply_metadata, create_special and write_sparse_aware."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehold.engine.format.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from safehold.engine.fs.meta import (
    SPARSE_BLOCK,
    SpecialFileError,
    apply_metadata,
    create_special,
    node_from_stat,
    write_sparse_aware,
)

ROOT = os.geteuid() == 0
NS = 1_700_000_000_123_456_789


def b(p: Path) -> bytes:
    return os.fsencode(p)


def capture(p: Path | bytes) -> Node:
    pb = os.fsencode(p)
    return node_from_stat(os.path.basename(pb), pb, os.lstat(pb))


def xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


def test_file_node(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(b"hello")
    os.chmod(f, 0o4750)
    os.utime(f, ns=(NS - 5, NS))
    n = capture(f)
    assert (n.name, n.type, n.mode, n.size) == (b"f.txt", FILE, 0o4750, 5)
    assert (n.mtime_ns, n.atime_ns) == (NS, NS - 5)
    assert n.ctime_ns == os.lstat(f).st_ctime_ns
    st_ = os.lstat(f)
    assert (n.uid, n.gid, n.inode, n.device, n.links) == (st_.st_uid, st_.st_gid, st_.st_ino, st_.st_dev, 1)
    if ROOT:
        assert (n.user, n.group) == ("root", "root")
    assert n.linktarget is None and n.rdev == 0 and n.content == [] and n.subtree is None


def test_unknown_owner_has_empty_names(tmp_path: Path) -> None:
    if not ROOT:
        pytest.skip("needs root to chown")
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.chown(f, 54321, 54322)
    n = capture(f)
    assert (n.uid, n.gid, n.user, n.group) == (54321, 54322, "", "")


def test_dir_symlink_fifo_socket_nodes(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_bytes(b"123")
    nd = capture(d)
    assert nd.type == DIR and nd.size == 0 and nd.links == 2

    raw_link = os.path.join(b(tmp_path), b"l\xff")
    os.symlink(b"target-\xe9/../x", raw_link)
    nl = capture(raw_link)
    assert (nl.name, nl.type, nl.linktarget, nl.size) == (b"l\xff", SYMLINK, b"target-\xe9/../x", 0)

    os.mkfifo(tmp_path / "p", 0o640)
    nf = capture(tmp_path / "p")
    assert (nf.type, nf.mode, nf.size) == (FIFO, 0o640, 0)

    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(f"/proc/self/fd/{dfd}/s")
    finally:
        os.close(dfd)
    assert capture(tmp_path / "s").type == SOCKET


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_device_nodes(tmp_path: Path) -> None:
    for name, kind, t in (("c", stat.S_IFCHR, CHARDEV), ("b", stat.S_IFBLK, BLOCKDEV)):
        try:
            os.mknod(tmp_path / name, kind | 0o600, os.makedev(7, 42))
        except PermissionError:
            pytest.skip("mknod refused (no CAP_MKNOD)")
        n = capture(tmp_path / name)
        assert (n.type, n.rdev, n.size) == (t, os.makedev(7, 42), 0)


def test_hard_links_share_inode(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    os.link(tmp_path / "a", tmp_path / "b")
    na, nb = capture(tmp_path / "a"), capture(tmp_path / "b")
    assert na.links == nb.links == 2
    assert (na.inode, na.device) == (nb.inode, nb.device)


def test_xattrs_sorted_binary(tmp_path: Path) -> None:
    if not xattrs_supported(tmp_path):
        pytest.skip("no user xattrs here")
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.setxattr(f, "user.zz", b"\x00\xff")
    os.setxattr(f, "user.aa", b"")
    n = capture(f)
    assert [x for x in n.xattrs if x[0].startswith(b"user.")] == [
        (b"user.aa", b""),
        (b"user.zz", b"\x00\xff"),
    ]
    os.symlink("f", tmp_path / "l")
    assert capture(tmp_path / "l").xattrs == []  # the link's own, not its target's


def test_apply_metadata_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"data")
    os.chmod(src, 0o4755)
    os.utime(src, ns=(NS - 999, NS))
    node = capture(src)
    if xattrs_supported(tmp_path):
        node.xattrs = [(b"user.one", b"1"), (b"user.two", b"\x00")]
    dst = tmp_path / "dst"
    dst.write_bytes(b"data")
    node.mode = 0o4755
    if ROOT:
        node.uid, node.gid, node.user, node.group = 4242, 4343, "", ""
    warnings = apply_metadata(b(dst), node, restore_owner=ROOT)
    assert warnings == []
    st_ = os.lstat(dst)
    assert stat.S_IMODE(st_.st_mode) == 0o4755  # chmod after chown: setuid survives
    assert (st_.st_mtime_ns, st_.st_atime_ns) == (NS, NS - 999)
    if ROOT:
        assert (st_.st_uid, st_.st_gid) == (4242, 4343)
    for key, value in node.xattrs:
        assert os.getxattr(dst, key) == value


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_owner_by_name_first_then_by_id(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    node = capture(f)
    node.uid, node.gid, node.user, node.group = 777, 778, "root", "root"  # name exists here: wins
    assert apply_metadata(b(f), node, restore_owner=True) == []
    assert (os.lstat(f).st_uid, os.lstat(f).st_gid) == (0, 0)
    node.user, node.group = "no-such-user-safehold", "no-such-group-safehold"  # falls back to the ids
    assert apply_metadata(b(f), node, restore_owner=True) == []
    assert (os.lstat(f).st_uid, os.lstat(f).st_gid) == (777, 778)
    node.uid = 999
    assert apply_metadata(b(f), node, restore_owner=False) == []
    assert os.lstat(f).st_uid == 777  # restore_owner=False leaves the owner alone


def test_apply_metadata_symlink_touches_link_not_target(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"")
    os.chmod(target, 0o640)
    os.utime(target, ns=(NS, NS))
    os.symlink("t", tmp_path / "l")
    node = capture(tmp_path / "l")
    node.mtime_ns, node.atime_ns, node.mode = NS + 10**9, NS + 10**9, 0o777
    assert apply_metadata(b(tmp_path / "l"), node, restore_owner=ROOT) == []
    assert os.lstat(tmp_path / "l").st_mtime_ns == NS + 10**9
    assert os.stat(target).st_mtime_ns == NS
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_apply_metadata_warns_never_raises(tmp_path: Path) -> None:
    node = Node(name=b"x", type=FILE, mode=0o644, mtime_ns=NS, xattrs=[(b"user.a", b"1")])
    warnings = apply_metadata(b(tmp_path / "missing"), node, restore_owner=True)
    assert len(warnings) == 4  # owner, xattr, mode, times: each reported, none raised
    assert all("missing" in w for w in warnings)
    os.symlink("nowhere", tmp_path / "l")
    link = Node(name=b"l", type=SYMLINK, mtime_ns=NS, xattrs=[(b"user.a", b"1")])
    warnings = apply_metadata(b(tmp_path / "l"), link, restore_owner=False)
    assert len(warnings) == 1 and "xattr user.a" in warnings[0]  # user.* is not allowed on symlinks
    assert os.lstat(tmp_path / "l").st_mtime_ns == NS  # times still applied after the failure


def test_create_special(tmp_path: Path) -> None:
    fifo = Node(name=b"p", type=FIFO, mode=0o640)
    assert create_special(b(tmp_path / "p"), fifo) is True
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p").st_mode)
    with pytest.raises(SpecialFileError, match="FIFO"):
        create_special(b(tmp_path / "p"), fifo)  # exists already
    assert create_special(b(tmp_path / "s"), Node(name=b"s", type=SOCKET)) is False
    assert not os.path.lexists(tmp_path / "s")
    with pytest.raises(ValueError):
        create_special(b(tmp_path / "f"), Node(name=b"f", type=FILE))


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_create_device_nodes(tmp_path: Path) -> None:
    for t, test in ((CHARDEV, stat.S_ISCHR), (BLOCKDEV, stat.S_ISBLK)):
        path = b(tmp_path / t)
        try:
            create_special(path, Node(name=b"d", type=t, rdev=os.makedev(1, 7)))
        except SpecialFileError as exc:
            assert "device node" in str(exc)
            pytest.skip("mknod refused in this container")
        st_ = os.lstat(path)
        assert test(st_.st_mode) and st_.st_rdev == os.makedev(1, 7)


@pytest.mark.skipif(ROOT, reason="root may create device nodes")
def test_create_device_node_needs_root(tmp_path: Path) -> None:
    with pytest.raises(SpecialFileError) as info:
        create_special(b(tmp_path / "c"), Node(name=b"c", type=CHARDEV, rdev=os.makedev(1, 3)))
    assert "root" in info.value.hint


# -- write_sparse_aware ---------------------------------------------------------------------------


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def write_file(path: Path, size: int, pieces: list[tuple[int, bytes | bytearray | memoryview]]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
        for off, data in pieces:
            write_sparse_aware(fd, off, data)
    finally:
        os.close(fd)


def test_all_zero_data_leaves_a_hole(tmp_path: Path) -> None:
    f = tmp_path / "z"
    write_file(f, 32 << 20, [(0, bytes(16 << 20)), (16 << 20, memoryview(bytearray(16 << 20)))])
    assert f.stat().st_size == 32 << 20
    assert allocated(f) < 64 * 1024
    assert f.read_bytes() == bytes(32 << 20)


def test_mixed_data_holes_at_block_granularity(tmp_path: Path) -> None:
    # One 8 MiB "chunk" with two small data islands at an unaligned file offset: only the blocks that
    # hold data may be allocated, not the whole chunk.
    chunk = bytearray(8 << 20)
    chunk[100:200] = os.urandom(100)
    chunk[5_000_000:5_000_001] = b"\x01"
    f = tmp_path / "m"
    offset = 12345
    write_file(f, offset + len(chunk), [(offset, chunk)])
    assert f.read_bytes() == bytes(offset) + bytes(chunk)
    assert allocated(f) <= 4 * SPARSE_BLOCK + 64 * 1024


def test_random_data_written_whole(tmp_path: Path) -> None:
    data = os.urandom(3 * SPARSE_BLOCK + 17)
    f = tmp_path / "r"
    write_file(f, len(data) + 10, [(10, data)])
    assert f.read_bytes() == bytes(10) + data


@settings(max_examples=150, deadline=None)
@given(
    offset=st.integers(0, 3 * SPARSE_BLOCK),
    runs=st.lists(
        st.tuples(st.booleans(), st.integers(1, 3 * SPARSE_BLOCK)),
        min_size=1,
        max_size=8,
    ),
)
def test_sparse_write_content_property(
    tmp_path_factory: pytest.TempPathFactory, offset: int, runs: list[tuple[bool, int]]
) -> None:
    data = b"".join((b"\x01\x02" * n)[:n] if nonzero else bytes(n) for nonzero, n in runs)
    f = tmp_path_factory.mktemp("prop") / "f"
    write_file(f, offset + len(data), [(offset, data)])
    assert f.read_bytes() == bytes(offset) + data


def test_zero_detection_is_fast(tmp_path: Path) -> None:
    zeros = bytes(8 << 20)
    rnd = os.urandom(8 << 20)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 256 << 20)
        t0 = time.process_time()
        for i in range(32):  # 256 MiB of zeros: nothing is written
            write_sparse_aware(fd, i * len(zeros), zeros)
        elapsed = time.process_time() - t0
    finally:
        os.close(fd)
    assert elapsed < 0.5, f"zero check ran at {256 / max(elapsed, 1e-9):.0f} MiB/s"
    # Non-zero data is decided by the first byte of each block: negligible next to the write itself.
    t0 = time.process_time()
    from safehold.engine.fs.meta import _nonzero_blocks

    for _ in range(32):
        assert all(_nonzero_blocks(memoryview(rnd)))
    assert time.process_time() - t0 < 0.5
