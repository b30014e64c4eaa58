"""Compare two file trees in every detail a backup must preserve; report every difference.

``compare_trees(a, b)`` walks both trees (bytes paths, ``lstat``, never following symlinks) and returns
one line per difference, with the path relative to the roots:

* names present in one tree only, entry type;
* permission bits (``S_IMODE``, so setuid/setgid/sticky too; not for symlinks, which have none);
* size and byte-identical content of regular files (read in 1 MiB blocks);
* mtime in ns for every entry (directories and symlinks' own too); atime with ``check_atime`` (not for
  symlinks: on Linux ``readlink`` itself sets a link's atime, so no backup can preserve it);
* symlink targets, device numbers of device nodes, extended attributes (``system.*``/``security.*`` too);
* uid/gid with ``check_owner``;
* hard-link structure: which paths share an inode inside each tree (links leaving the tree are ignored);
* sparseness: a file that is sparse in ``a`` must not allocate much more in ``b`` than in ``a``
  (bound: ``a``'s allocation + max(1 MiB, 25 %)).

Sockets are skipped on both sides: safehold records them but does not recreate them at restore
(``safehold.engine.fs.meta``). The roots' own metadata is compared only with ``check_root=True``.
All metadata is read before any content, and folders and files are opened with ``O_NOATIME`` where
permitted, so comparing does not disturb the access times it compares.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20
_SPARSE_SLACK = 1 << 20


@dataclass
class _Entry:
    rel: bytes
    st: os.stat_result
    xattrs: list[tuple[bytes, bytes]]
    target: bytes | None


def _show(rel: bytes) -> str:
    return rel.decode("utf-8", "backslashreplace") or "."


def _xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in names:
        try:
            out.append((os.fsencode(name), os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return sorted(out)


def _walk(root: bytes) -> dict[bytes, _Entry]:
    """Every entry under ``root`` (and root itself as b'') keyed by relative path, sockets left out."""
    out: dict[bytes, _Entry] = {}
    st = os.lstat(root)
    out[b""] = _Entry(b"", st, _xattrs(root), None)
    stack = [b""]
    while stack:
        rel = stack.pop()
        path = os.path.join(root, rel) if rel else root
        for name in sorted(_listdir(path)):
            crel = os.path.join(rel, name) if rel else name
            cpath = os.path.join(root, crel)
            cst = os.lstat(cpath)
            if stat.S_ISSOCK(cst.st_mode):
                continue
            target = os.readlink(cpath) if stat.S_ISLNK(cst.st_mode) else None
            out[crel] = _Entry(crel, cst, _xattrs(cpath), target)
            if stat.S_ISDIR(cst.st_mode):
                stack.append(crel)
    return out


def _open(path: bytes, flags: int) -> int:
    """Open without touching the access time where permitted (owner or root)."""
    try:
        return os.open(path, flags | os.O_NOATIME | os.O_CLOEXEC)
    except PermissionError:
        return os.open(path, flags | os.O_CLOEXEC)


def _listdir(path: bytes) -> list[bytes]:
    fd = _open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return [os.fsencode(n) for n in os.listdir(fd)]
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return f"unknown({stat.S_IFMT(mode):#o})"


def _link_groups(entries: dict[bytes, _Entry]) -> dict[bytes, frozenset[bytes]]:
    """For each non-directory path that shares its inode with another path of the tree: the group."""
    by_inode: dict[tuple[int, int], set[bytes]] = {}
    for rel, e in entries.items():
        if not stat.S_ISDIR(e.st.st_mode) and e.st.st_nlink > 1:
            by_inode.setdefault((e.st.st_dev, e.st.st_ino), set()).add(rel)
    groups: dict[bytes, frozenset[bytes]] = {}
    for members in by_inode.values():
        if len(members) > 1:
            frozen = frozenset(members)
            for rel in members:
                groups[rel] = frozen
    return groups


def _same_content(pa: bytes, pb: bytes) -> str | None:
    with (
        open(_open(pa, os.O_RDONLY), "rb", buffering=0) as fa,
        open(_open(pb, os.O_RDONLY), "rb", buffering=0) as fb,
    ):
        offset = 0
        while True:
            ba = fa.read(_BLOCK)
            bb = fb.read(_BLOCK)
            if ba != bb:
                for i, (x, y) in enumerate(zip(ba, bb, strict=False)):
                    if x != y:
                        return f"content differs at byte {offset + i}"
                return f"content differs at byte {offset + min(len(ba), len(bb))} (length)"
            if not ba:
                return None
            offset += len(ba)


def compare_trees(
    a: Path | str | bytes,
    b: Path | str | bytes,
    *,
    check_owner: bool,
    check_atime: bool = False,
    check_root: bool = False,
) -> list[str]:
    """Every difference between the trees at ``a`` (expected) and ``b`` (actual); [] when identical."""
    ra, rb = os.fsencode(a), os.fsencode(b)
    ea, eb = _walk(ra), _walk(rb)
    diffs: list[str] = []
    for rel in sorted(ea.keys() - eb.keys()):
        diffs.append(f"{_show(rel)}: missing in b")
    for rel in sorted(eb.keys() - ea.keys()):
        diffs.append(f"{_show(rel)}: unexpected in b")

    content_checks: list[bytes] = []
    for rel in sorted(ea.keys() & eb.keys()):
        if rel == b"" and not check_root:
            continue
        x, y = ea[rel], eb[rel]
        where = _show(rel)
        sa, sb = x.st, y.st
        ka, kb = _kind(sa.st_mode), _kind(sb.st_mode)
        if ka != kb:
            diffs.append(f"{where}: type {ka} != {kb}")
            continue
        if ka != "symlink" and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            diffs.append(f"{where}: mode {stat.S_IMODE(sa.st_mode):#o} != {stat.S_IMODE(sb.st_mode):#o}")
        if sa.st_mtime_ns != sb.st_mtime_ns:
            diffs.append(f"{where}: mtime_ns {sa.st_mtime_ns} != {sb.st_mtime_ns}")
        if check_atime and ka != "symlink" and sa.st_atime_ns != sb.st_atime_ns:
            diffs.append(f"{where}: atime_ns {sa.st_atime_ns} != {sb.st_atime_ns}")
        if check_owner and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diffs.append(f"{where}: owner {sa.st_uid}:{sa.st_gid} != {sb.st_uid}:{sb.st_gid}")
        if x.xattrs != y.xattrs:
            diffs.append(f"{where}: xattrs {x.xattrs!r} != {y.xattrs!r}")
        if ka == "symlink" and x.target != y.target:
            diffs.append(f"{where}: symlink target {x.target!r} != {y.target!r}")
        if ka in ("chardev", "blockdev") and sa.st_rdev != sb.st_rdev:
            diffs.append(f"{where}: device number {sa.st_rdev:#x} != {sb.st_rdev:#x}")
        if ka == "file":
            if sa.st_size != sb.st_size:
                diffs.append(f"{where}: size {sa.st_size} != {sb.st_size}")
            else:
                content_checks.append(rel)
            alloc_a, alloc_b = sa.st_blocks * 512, sb.st_blocks * 512
            bound = alloc_a + max(_SPARSE_SLACK, alloc_a // 4)
            if bound < sa.st_size and alloc_b > bound:
                diffs.append(
                    f"{where}: not sparse: {alloc_b} bytes allocated for {sa.st_size}, "
                    f"original allocates {alloc_a}"
                )

    ga, gb = _link_groups(ea), _link_groups(eb)
    for rel in sorted((ga.keys() | gb.keys()) & ea.keys() & eb.keys()):
        group_a = sorted(_show(r) for r in ga.get(rel, frozenset({rel})))
        group_b = sorted(_show(r) for r in gb.get(rel, frozenset({rel})))
        if group_a != group_b:
            diffs.append(f"{_show(rel)}: hard links {group_a} != {group_b}")

    for rel in content_checks:
        problem = _same_content(os.path.join(ra, rel), os.path.join(rb, rel))
        if problem:
            diffs.append(f"{_show(rel)}: {problem}")
    return diffs


def assert_trees_equal(
    a: Path | str | bytes,
    b: Path | str | bytes,
    *,
    check_owner: bool,
    check_atime: bool = False,
    check_root: bool = False,
) -> None:
    """Raise AssertionError listing every difference between ``a`` and ``b``."""
    diffs = compare_trees(a, b, check_owner=check_owner, check_atime=check_atime, check_root=check_root)
    if diffs:
        shown = "\n  ".join(diffs[:200])
        more = f"\n  ... and {len(diffs) - 200} more" if len(diffs) > 200 else ""
        raise AssertionError(f"trees differ ({len(diffs)} differences):\n  {shown}{more}")
