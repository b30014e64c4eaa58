"""File metadata: capture into a :class:`~safehold.engine.format.tree.Node`, apply back at restore.

Capture (:func:`node_from_stat`) and apply (:func:`apply_metadata`) are symmetric: what one records the
other restores, and ``tests/helpers/treecompare.py`` checks exactly that set (type, permission bits incl.
setuid/setgid/sticky, owner, mtime/atime in ns, symlink target, xattrs, hard links, device numbers).

Linux specifics:

* xattrs are read and written with ``follow_symlinks=False``. POSIX ACLs (``system.posix_acl_*``) and file
  capabilities (``security.capability``) are xattrs on Linux, so they travel with the others.
* A symlink has no permission bits of its own: its mode is recorded but never applied.
* ``ctime`` cannot be set; it is recorded for change detection only.
* Sockets are recorded (so ``ls`` shows them) but not recreated: a socket file without its listening
  process is useless, and a stale one can stop the daemon that owns it from starting. restic does the same.

Order in :func:`apply_metadata`: ``lchown`` (which clears setuid/setgid and file capabilities), then
xattrs (before ``chmod``, because a non-root user can no longer set ``user.*`` xattrs on a file once it is
read-only), then ``chmod`` (restores setuid/setgid after the chown), then times (last: everything before
changes ctime, and for directories the caller must apply metadata only after the contents are in place).
"""

from __future__ import annotations

import errno
import functools
import grp
import itertools
import os
import pwd
import stat

from safehold.engine.format.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from safehold.errors import SafeholdError

_IGNORED_XATTR_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.ENODATA})


class SpecialFileError(SafeholdError):
    """A FIFO or device node could not be created at restore."""

    default_hint = (
        "Creating device nodes needs root (CAP_MKNOD); restore as root, or exclude the device files."
    )


def node_type(st_mode: int) -> str:
    """The :mod:`safehold.engine.format.tree` type name of a ``st_mode`` (``ValueError`` for an unknown type)."""
    fmt = stat.S_IFMT(st_mode)
    try:
        return _TYPES[fmt]
    except KeyError:
        raise ValueError(f"unknown file type {fmt:#o}") from None


_TYPES = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
    stat.S_IFCHR: CHARDEV,
    stat.S_IFBLK: BLOCKDEV,
}


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The name of a uid on this system, '' when it has none (cached)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    """The name of a gid on this system, '' when it has none (cached)."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=4096)
def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@functools.lru_cache(maxsize=4096)
def _gid_of(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def read_xattrs(path: bytes, errors: list[str] | None = None) -> list[tuple[bytes, bytes]]:
    """All extended attributes of ``path`` itself (not a symlink's target), sorted by name.

    A file system without xattr support, a permission refusal or an attribute that vanished meanwhile
    yields nothing for it; any other failure is appended to ``errors`` (when given) and skipped.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _IGNORED_XATTR_ERRNOS and exc.errno != errno.ENOENT and errors is not None:
            errors.append(f"{os.fsdecode(path)}: cannot list xattrs: {exc.strerror}")
        return []
    out: list[tuple[bytes, bytes]] = []
    for name in names:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _IGNORED_XATTR_ERRNOS and exc.errno != errno.ENOENT and errors is not None:
                errors.append(f"{os.fsdecode(path)}: cannot read xattr {name}: {exc.strerror}")
            continue
        out.append((os.fsencode(name), value))
    out.sort()
    return out


def node_from_stat(name: bytes, path: bytes, st: os.stat_result, *, errors: list[str] | None = None) -> Node:
    """A :class:`Node` with every piece of metadata of ``path`` (whose ``lstat`` is ``st``).

    ``content`` and ``subtree`` are left empty for the engine to fill. ``size`` is set for regular files
    only, ``linktarget`` for symlinks, ``rdev`` for device nodes. ``inode``/``device``/``links`` are
    always set (``links > 1`` marks a hard-linked file). xattr problems other than "not supported / not
    permitted" are appended to ``errors``; a symlink that vanished before ``readlink`` raises ``OSError``
    (the caller treats the entry as unreadable).
    """
    mode = st.st_mode
    kind = node_type(mode)
    uid, gid = st.st_uid, st.st_gid
    return Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(mode),
        uid=uid,
        gid=gid,
        user=user_name(uid),
        group=group_name(gid),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        atime_ns=st.st_atime_ns,
        size=st.st_size if kind == FILE else 0,
        linktarget=os.readlink(path) if kind == SYMLINK else None,
        inode=st.st_ino,
        device=st.st_dev,
        links=st.st_nlink,
        rdev=st.st_rdev if kind in (CHARDEV, BLOCKDEV) else 0,
        xattrs=read_xattrs(path, errors),
    )


def owner_ids(node: Node) -> tuple[int, int]:
    """Owner ids to restore: by name when the name exists here, else the recorded number."""
    uid = _uid_of(node.user) if node.user else None
    gid = _gid_of(node.group) if node.group else None
    return (node.uid if uid is None else uid, node.gid if gid is None else gid)


def apply_metadata(path: bytes, node: Node, *, restore_owner: bool, fd: int | None = None) -> list[str]:
    """Apply ``node``'s owner, xattrs, mode and times to the existing ``path``; return warnings.

    Never raises for a metadata failure: each failed step adds one warning and the next step still runs.
    Owner is restored only with ``restore_owner`` (normally when running as root). Symlinks get owner,
    xattrs and times but no mode. Existing xattrs that the node does not list are left alone. For a
    directory, call this after its contents are restored (creating entries changes its mtime, and a
    read-only mode would stop the restore). With ``fd`` (an open descriptor of ``path``, a regular file
    whose contents are complete) every step goes through the descriptor: no path lookups.
    """
    if fd is not None and node.type != SYMLINK:
        uid, gid = owner_ids(node) if restore_owner else (-1, -1)
        return apply_file_metadata(
            fd,
            path,
            node.mode,
            uid,
            gid,
            node.atime_ns,
            node.mtime_ns,
            node.xattrs,
            restore_owner=restore_owner,
        )
    warnings: list[str] = []
    shown = os.fsdecode(path)
    is_link = node.type == SYMLINK
    target: bytes | int = path if fd is None else fd
    follow = fd is not None  # a path is never followed; a descriptor has nothing to follow
    if restore_owner:
        uid, gid = owner_ids(node)
        try:
            os.chown(target, uid, gid, follow_symlinks=follow)
        except OSError as exc:
            warnings.append(f"{shown}: cannot set owner {uid}:{gid}: {exc.strerror}")
    for key, value in node.xattrs:
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except OSError as exc:
            warnings.append(f"{shown}: cannot set xattr {os.fsdecode(key)}: {exc.strerror}")
    if not is_link:
        try:
            os.chmod(target, node.mode)
        except OSError as exc:
            warnings.append(f"{shown}: cannot set mode {node.mode:#o}: {exc.strerror}")
    try:
        os.utime(target, ns=(node.atime_ns, node.mtime_ns), follow_symlinks=follow)
    except OSError as exc:
        warnings.append(f"{shown}: cannot set times: {exc.strerror}")
    return warnings


def apply_file_metadata(
    fd: int,
    path: bytes,
    mode: int,
    uid: int,
    gid: int,
    atime_ns: int,
    mtime_ns: int,
    xattrs: list[tuple[bytes, bytes]],
    *,
    restore_owner: bool,
) -> list[str]:
    """:func:`apply_metadata` for the open regular file ``fd`` from the metadata itself (owner ids already
    resolved, see :func:`owner_ids`): the same steps in the same order, each through the descriptor;
    ``path`` only names the file in warnings."""
    warnings: list[str] = []
    if restore_owner:
        try:
            os.fchown(fd, uid, gid)
        except OSError as exc:
            warnings.append(f"{os.fsdecode(path)}: cannot set owner {uid}:{gid}: {exc.strerror}")
    for key, value in xattrs:
        try:
            os.setxattr(fd, key, value)
        except OSError as exc:
            warnings.append(f"{os.fsdecode(path)}: cannot set xattr {os.fsdecode(key)}: {exc.strerror}")
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        warnings.append(f"{os.fsdecode(path)}: cannot set mode {mode:#o}: {exc.strerror}")
    try:
        os.utime(fd, ns=(atime_ns, mtime_ns))
    except OSError as exc:
        warnings.append(f"{os.fsdecode(path)}: cannot set times: {exc.strerror}")
    return warnings


def apply_metadata_at(dir_fd: int, name: bytes, node: Node, *, restore_owner: bool, shown: str) -> list[str]:
    """:func:`apply_metadata` for the symlink or special file ``name`` in the folder open as ``dir_fd``:
    every step acts on the entry itself, never on what a symlink there points to (``shown``: the path
    for warnings)."""
    warnings: list[str] = []
    if restore_owner:
        uid, gid = owner_ids(node)
        try:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            warnings.append(f"{shown}: cannot set owner {uid}:{gid}: {exc.strerror}")
    # no *xattrat: the folder through its descriptor's /proc link, the entry itself not followed
    at = b"/proc/self/fd/%d/%s" % (dir_fd, name)
    for key, value in node.xattrs:
        try:
            os.setxattr(at, key, value, follow_symlinks=False)
        except OSError as exc:
            warnings.append(f"{shown}: cannot set xattr {os.fsdecode(key)}: {exc.strerror}")
    if node.type != SYMLINK:
        try:
            os.chmod(name, node.mode, dir_fd=dir_fd, follow_symlinks=False)
        except (OSError, ValueError, NotImplementedError) as exc:  # ValueError: a symlink is there now
            warnings.append(
                f"{shown}: cannot set mode {node.mode:#o}: {getattr(exc, 'strerror', None) or exc}"
            )
    try:
        os.utime(name, ns=(node.atime_ns, node.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        warnings.append(f"{shown}: cannot set times: {exc.strerror}")
    return warnings


def create_special(path: bytes, node: Node, *, dir_fd: int | None = None, shown: str | None = None) -> bool:
    """Create the FIFO or device node ``node`` describes at ``path`` (a name in ``dir_fd`` when given);
    False when deliberately skipped.

    Sockets are skipped (returns False; see the module docstring). The node is created with mode 0o600;
    :func:`apply_metadata` sets the real mode, owner and times afterwards. Raises
    :class:`SpecialFileError` when creation fails (device nodes need root / CAP_MKNOD; an existing path
    is an error too), ``ValueError`` for a node that is not a special file.
    """
    if node.type == SOCKET:
        return False
    shown = shown or os.fsdecode(path)
    try:
        if node.type == FIFO:
            os.mkfifo(path, 0o600, dir_fd=dir_fd)
        elif node.type in (CHARDEV, BLOCKDEV):
            kind = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
            os.mknod(path, kind | 0o600, node.rdev, dir_fd=dir_fd)
        else:
            raise ValueError(f"{shown}: not a special file: {node.type}")
    except OSError as exc:
        what = "FIFO" if node.type == FIFO else "device node"
        hint = None if exc.errno == errno.EPERM else "Check that the target folder exists and is writable."
        raise SpecialFileError(f"cannot create {what} {shown}: {exc.strerror}", hint=hint) from exc
    return True


#: Hole granularity of :func:`write_sparse_aware`: the common file-system block size.
SPARSE_BLOCK = 4096


def write_sparse_aware(fd: int, offset: int, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` at ``offset`` of ``fd``, leaving holes where it is all zeros.

    Works in file-aligned blocks of :data:`SPARSE_BLOCK` bytes, not per call: content-defined chunks do
    not line up with a sparse file's holes, so skipping only all-zero *chunks* would allocate most of
    the chunks that straddle a hole. Contract: the file is freshly created or truncated and pre-sized with
    ``os.ftruncate(fd, size)``, so every skipped block already reads as zeros (a trailing zero block is
    never written, so without the ftruncate the file would come out short).

    Speed: all-zero data is recognised at ~20 GiB/s, random data at ~100 GiB/s (one byte per block
    decides); the data itself is written with one ``pwrite`` per run of non-zero blocks.
    """
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n == 0:
        return
    head = min((-offset) % SPARSE_BLOCK, n)
    body = (n - head) // SPARSE_BLOCK * SPARSE_BLOCK
    tail_start = head + body
    # Segment list (start, end, nonzero) in data order.
    segments: list[tuple[int, int, bool]] = []
    if head:
        segments.append((0, head, _nonzero(mv[:head])))
    if body:
        flags = _nonzero_blocks(mv[head:tail_start])
        s = 0
        for nonzero, run in itertools.groupby(flags):
            e = s + sum(1 for _ in run)
            segments.append((head + s * SPARSE_BLOCK, head + e * SPARSE_BLOCK, nonzero))
            s = e
    if tail_start < n:
        segments.append((tail_start, n, _nonzero(mv[tail_start:])))
    # Coalesce adjacent non-zero segments and write them.
    run_start: int | None = None
    run_end = 0
    for start, end, nonzero in segments:
        if nonzero:
            if run_start is None:
                run_start = start
            run_end = end
        elif run_start is not None:
            _pwrite_all(fd, mv[run_start:run_end], offset + run_start)
            run_start = None
    if run_start is not None:
        _pwrite_all(fd, mv[run_start:run_end], offset + run_start)


def _nonzero(mv: memoryview) -> bool:
    return bool(mv[0] or mv[-1]) or mv.tobytes() != bytes(len(mv))


_ZERO_BLOCK = bytes(SPARSE_BLOCK)


def _nonzero_blocks(mv: memoryview) -> list[bool]:
    """One bool per SPARSE_BLOCK of ``mv`` (whose length is a multiple of it): has a non-zero byte.

    The first byte of a block decides for almost every block of real data (~100 GiB/s); a block that
    starts with zero is compared whole (~20 GiB/s). No numpy: restore helper processes stay small.
    """
    zero = _ZERO_BLOCK
    return [mv[i] != 0 or mv[i : i + SPARSE_BLOCK].tobytes() != zero for i in range(0, len(mv), SPARSE_BLOCK)]


def _pwrite_all(fd: int, mv: memoryview, offset: int) -> None:
    while mv:
        written = os.pwrite(fd, mv, offset)
        mv = mv[written:]
        offset += written
