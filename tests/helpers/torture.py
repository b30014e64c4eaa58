"""A file tree with every awkward thing a file backup must survive, for round-trip tests.

``make_torture_tree(root)`` fills the (existing or new) folder ``root`` with: nested folders, Unicode
names (ä, 日本, emoji), a name that is not UTF-8 (``b"caf\\xe9"``), an empty folder, a 0-byte file, small
and medium files of random and of compressible content, odd modes (0o4755 setuid, 0o2755 setgid, 0o600,
0o777, a sticky 0o1777 folder), symlinks (relative, absolute, dangling, to a folder), hard links across two
folders and an inode with three links, a FIFO, a Unix socket, a 64 MiB sparse file with a few written
regions, user.* xattrs (binary values too; skipped where the file system refuses them), explicit
nanosecond mtimes and atimes on every entry including folders and symlinks, a read-only folder (0o555,
set last), with ``big_file_mib`` one big file of that many MiB of non-repeating data, and when running as
root a character device and a block device (skipped where mknod is refused).

It takes ~0.2 s without the big file; the big file is generated at several hundred MiB/s (BLAKE3 XOF).
:data:`FEATURES` lists what the last call actually created, so a test can tell what was skipped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

import blake3

#: Names of optional parts that the most recent make_torture_tree call could create.
FEATURES: set[str] = set()

SPARSE_SIZE = 64 << 20
#: (offset, length) of the data regions of ``sparse.img``; the rest of it is holes.
SPARSE_REGIONS = ((0, 4096), (10 << 20, 65536), ((40 << 20) + 123, 5000), (SPARSE_SIZE - 1024, 1024))

_BASE_NS = 1_600_000_000_123_456_789


def _random(seed: bytes, n: int) -> bytes:
    """Deterministic, non-repeating pseudo-random bytes (BLAKE3 in XOF mode)."""
    return blake3.blake3(seed).digest(length=n)


def _compressible(n: int) -> bytes:
    line = b"2024-05-01 12:00:00 INFO request handled path=/api/v1/items status=200 ms=12\n"
    return (line * (n // len(line) + 1))[:n]


def _write(path: Path | bytes, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _try_xattr(path: Path | bytes, name: str, value: bytes) -> bool:
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError:
        return False
    return True


def _make_socket(path: Path) -> bool:
    """Bind a Unix socket at ``path`` (through /proc/self/fd so long paths work), then close it."""
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(f"/proc/self/fd/{dfd}/{path.name}")
    except OSError:
        return False
    finally:
        os.close(dfd)
    return True


def _write_big(path: Path, mib: int) -> None:
    hasher = blake3.blake3(b"safehold-torture-big")
    block = 4 << 20
    total = mib << 20
    with open(path, "wb") as f:
        for off in range(0, total, block):
            f.write(hasher.digest(length=min(block, total - off), seek=off))


def make_torture_tree(root: Path, *, big_file_mib: int = 0) -> None:
    """Create the torture tree in ``root`` (see the module docstring)."""
    FEATURES.clear()
    root.mkdir(parents=True, exist_ok=True)
    rb = os.fsencode(root)

    # Nested folders and plain files.
    deep = root / "nested" / "level1" / "level2" / "level3"
    deep.mkdir(parents=True)
    _write(deep / "deep.txt", b"deep file\n")
    _write(root / "nested" / "level1" / "mid.txt", b"middle\n")

    # Unicode and non-UTF-8 names.
    _write(root / "ä-umlaut.txt", "Grüße\n".encode())
    (root / "日本").mkdir()
    _write(root / "日本" / "ファイル.txt", "日本語のテキスト\n".encode())
    _write(root / "emoji-😀.txt", "🙂\n".encode())
    _write(os.path.join(rb, b"caf\xe9"), b"latin-1 name\n")
    os.mkdir(os.path.join(rb, b"dir-\xff\xfe"))
    _write(os.path.join(rb, b"dir-\xff\xfe", b"inner-\x80.bin"), b"\x00\x01\x02")

    # Empty things.
    (root / "empty-dir").mkdir()
    _write(root / "zero.bin", b"")

    # Content of different sizes and compressibility.
    data = root / "data"
    data.mkdir()
    _write(data / "small-random.bin", _random(b"small", 1000))
    _write(data / "small-text.txt", _compressible(10_000))
    _write(data / "medium-random.bin", _random(b"medium", 3 * 1024 * 1024 + 17))
    _write(data / "medium-text.log", _compressible(2 * 1024 * 1024 + 5))
    _write(data / "one-byte", b"x")

    # Odd modes.
    modes = root / "modes"
    modes.mkdir()
    _write(modes / "setuid", b"#!/bin/sh\n", 0o4755)
    _write(modes / "setgid", b"#!/bin/sh\n", 0o2755)
    _write(modes / "private", b"secret-ish\n", 0o600)
    _write(modes / "open", b"anyone\n", 0o777)
    if os.geteuid() == 0:  # only root could read it back
        _write(modes / "none", b"no permissions\n", 0o000)
    (modes / "sticky").mkdir()
    os.chmod(modes / "sticky", 0o1777)
    (modes / "private-dir").mkdir()
    _write(modes / "private-dir" / "f", b"f\n")
    os.chmod(modes / "private-dir", 0o700)

    # Symlinks.
    links = root / "links"
    links.mkdir()
    os.symlink("../nested/level1/mid.txt", links / "relative")
    os.symlink(str(root / "data" / "small-text.txt"), links / "absolute")
    os.symlink("does/not/exist", links / "dangling")
    os.symlink("../nested", links / "to-dir")
    os.symlink(b"caf\xe9", os.path.join(rb, b"links", b"to-non-utf8"))

    # Hard links: a pair across two folders, and one inode with three links.
    (root / "hl-a").mkdir()
    (root / "hl-b").mkdir()
    _write(root / "hl-a" / "pair", b"linked twice\n")
    os.link(root / "hl-a" / "pair", root / "hl-b" / "pair-link")
    _write(root / "hl-a" / "triple", _random(b"triple", 5000))
    os.link(root / "hl-a" / "triple", root / "hl-b" / "triple-2")
    os.link(root / "hl-a" / "triple", root / "hl-a" / "triple-3")

    # Special files.
    special = root / "special"
    special.mkdir()
    os.mkfifo(special / "fifo", 0o640)
    if _make_socket(special / "socket"):
        FEATURES.add("socket")
    if os.geteuid() == 0:
        try:
            os.mknod(special / "chardev", stat.S_IFCHR | 0o620, os.makedev(1, 3))
            FEATURES.add("chardev")
        except OSError:
            pass
        try:
            os.mknod(special / "blockdev", stat.S_IFBLK | 0o660, os.makedev(7, 200))
            FEATURES.add("blockdev")
        except OSError:
            pass

    # Sparse file: large holes, a few data regions, data at the very end.
    sparse = root / "sparse.img"
    fd = os.open(sparse, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, SPARSE_SIZE)
        for off, length in SPARSE_REGIONS:
            os.pwrite(fd, _random(b"sparse%d" % off, length), off)
    finally:
        os.close(fd)
    if os.stat(sparse).st_blocks * 512 < SPARSE_SIZE // 4:
        FEATURES.add("sparse")

    # Extended attributes.
    ok = _try_xattr(data / "small-text.txt", "user.safehold.comment", b"hello")
    ok = _try_xattr(data / "small-text.txt", "user.safehold.binary", bytes(range(256))) and ok
    ok = _try_xattr(data, "user.safehold.dir", b"on a folder") and ok
    ok = _try_xattr(root / "hl-a" / "pair", "user.safehold.linked", b"") and ok
    if ok:
        FEATURES.add("xattrs")

    # The big file.
    if big_file_mib:
        _write_big(root / "big.bin", big_file_mib)
        FEATURES.add("big")

    # Read-only folder (its content first).
    ro = root / "readonly"
    ro.mkdir()
    _write(ro / "inside.txt", b"inside a read-only folder\n", 0o444)

    _set_times(rb)
    os.chmod(ro, 0o555)
    os.utime(ro, ns=(_BASE_NS + 7, _BASE_NS + 999_999_999))


def _set_times(root: bytes) -> None:
    """Give every entry distinct ns mtimes/atimes, children before parents (so folders keep theirs)."""
    counter = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in sorted(filenames + dirnames):
            path = os.path.join(dirpath, name)
            counter += 1
            mtime = _BASE_NS + counter * 1_000_003_001
            with contextlib.suppress(OSError):
                os.utime(path, ns=(mtime - 86_400_000_000_017, mtime), follow_symlinks=False)
        counter += 1
        mtime = _BASE_NS + counter * 1_000_003_001
        os.utime(dirpath, ns=(mtime - 3_600_000_000_011, mtime))
