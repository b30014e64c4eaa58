"""Folders below a restore target, reached one name at a time without following a symlink.

A restore runs as root and writes into folders that other users may be able to change (an app's
``storage/`` belongs to the web server's user). So below the restore target nothing is looked up by path:
every folder is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to the descriptor of its parent, and
files are created, renamed, linked and given their metadata relative to the descriptor of their folder
(``openat``, ``mkdirat``, ``renameat``, ``linkat``, ``fchmod``, ``fchownat``/``utimensat`` without
following). A symlink (or a file) where a folder must be is *in the way*: it is replaced only when the
restore may replace things (``--overwrite always``, ``--force``), otherwise that folder and everything
below it is refused with an error. The target itself is the folder the operator named and is opened as
named (a symlink in its own path is followed: that is where the operator wants the files).

:class:`DirTree` keeps descriptors of recently used folders (at most ``max_open``; a folder whose
descriptor was closed is opened again from its nearest open ancestor, by name, and must still be the
same folder: same device and inode). Restore helper processes open the same folders through their own
:class:`DirTree`, checking each against the identity the restoring process recorded, so a folder that was
swapped for another one (or for a symlink) while the restore ran is refused, never written into.

Temporary files get an unpredictable name and are created with ``O_EXCL`` (:func:`create_temp`): a file,
a FIFO or a symlink someone placed at a predictable name is never opened. A temporary file opened again
by name (the later pieces of a large file) must be the same inode (:func:`open_temp`).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from safehold.errors import SafeholdError

#: Opens a folder below the target: never through a symlink, never blocking on a FIFO.
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: A temporary file is new (O_EXCL) and never a symlink.
O_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TMP_SUFFIX = b".safehold-partial"
#: Descriptors of folders a :class:`DirTree` keeps open at most (each process has its own).
MAX_OPEN = 256

DirId = tuple[int, int]


class InTheWay(SafeholdError):
    """Something that is not a folder (a symlink, a file) is where a restore needs a folder, or a folder
    was replaced while the restore ran."""

    default_hint = (
        "safehold never writes through a symlink below the restore target. Check what the path is; "
        "to replace it with the folder from the snapshot, restore again with '--overwrite always' "
        "('restore --target') or '--force' (component restore)."
    )

    def __init__(self, message: str, hint: str | None = None, *, reported: bool = False) -> None:
        super().__init__(message, hint)
        #: The folder itself was reported already; this is a path below it.
        self.reported = reported


def _what(st: os.stat_result | None) -> str:
    if st is None:
        return "nothing"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISDIR(st.st_mode):
        return "a different folder"
    return "a special file"


def _lstat(dfd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return None


def open_folder(path: bytes, trusted: bytes, *, create: bool = True, replace: bool = False) -> int:
    """A descriptor of the folder ``path``, opened from ``trusted`` (a folder above it, or ``path`` itself,
    opened as named) one name at a time: a symlink on the way is followed only when root (or this user)
    owns it (an administrator's link, not one an unprivileged user planted); anything else in the way
    (another user's symlink, a file) is refused with :class:`InTheWay`, or with ``replace`` removed (the
    link itself, never what it points to) and a folder made in its place. ``create``: missing folders
    are made (mode 0755). The rule of a component restore from its target root down to what it writes."""
    if create:
        os.makedirs(trusted, exist_ok=True)
    fd = os.open(trusted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    here = trusted
    try:
        for name in os.path.relpath(path, trusted).split(b"/"):
            if name in (b".", b""):
                continue
            if name == b"..":
                raise InTheWay(f"{os.fsdecode(path)} is not below {os.fsdecode(trusted)}")
            here = os.path.join(here, name)
            child = step_down(fd, here, name, create=create, replace=replace)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def step_down(pfd: int, here: bytes, name: bytes, *, create: bool, replace: bool, mode: int = 0o755) -> int:
    """Open (with ``create``: make, with ``mode``) the folder ``name`` in folder ``pfd`` by the rule of
    :func:`open_folder`; ``here`` is its path, for messages."""
    st = _lstat(pfd, name)
    if st is None and create:
        try:
            os.mkdir(name, mode, dir_fd=pfd)
        except FileExistsError:
            pass
        st = _lstat(pfd, name)
    if st is not None and stat.S_ISDIR(st.st_mode):
        return os.open(name, O_DIR, dir_fd=pfd)
    if st is not None and stat.S_ISLNK(st.st_mode) and st.st_uid in (0, os.geteuid()):
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
    what = _what(st)
    if st is None or not replace:
        owner = " owned by another user" if st is not None and stat.S_ISLNK(st.st_mode) else ""
        raise InTheWay(
            f"{os.fsdecode(here)}: {what}{owner} is in the way of a folder; not followed, nothing "
            "restored below it"
        )
    try:
        os.unlink(name, dir_fd=pfd)
        os.mkdir(name, mode, dir_fd=pfd)
        return os.open(name, O_DIR, dir_fd=pfd)
    except OSError as exc:
        raise InTheWay(f"{os.fsdecode(here)}: cannot replace {what} with a folder: {exc.strerror}") from exc


#: The hint of a source that writes single files and never replaces what is in the way: an empty folder
#: in place of someone's symlink (a deployment's ``current``) would only break their setup.
SINGLE_FILE_HINT = (
    "safehold never writes through another user's symlink and never replaces one to put a single file "
    "there. Check what the path is; restore below --target-root, or to the real path (e.g. --set "
    "COMPONENT.path=...), or make the link root's if it is meant to be followed."
)


@contextmanager
def folder_of(dest: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Iterator[int]:
    """The descriptor of the folder ``dest`` goes in, for the block: reached from ``root`` (the restore's
    target root; ``/`` when None) by the rule of :func:`open_folder` (missing folders made, only root's own
    symlinks followed; another user's symlink or a file on the way raises :class:`InTheWay` with
    :data:`SINGLE_FILE_HINT`, never replaced). For a source that writes one file (with
    ``fsutil.AtomicFile(name, dir_fd=...)``) into a folder that someone else may be able to change."""
    folder = os.fsencode(os.path.abspath(dest))
    fd = open_dir_of_file(folder, root)
    try:
        yield fd
    finally:
        os.close(fd)


def open_dir_of_file(path: bytes, root: str | os.PathLike[str] | None = None, *, folder: bool = False) -> int:
    """A descriptor of ``path``'s folder (``folder``: of ``path`` itself) by the rule of :func:`folder_of`."""
    target = path if folder else os.path.dirname(path)
    try:
        return open_folder(target, os.fsencode(os.path.abspath(root or "/")))
    except InTheWay as exc:
        raise InTheWay(exc.message, hint=SINGLE_FILE_HINT) from None


def in_the_way(path: bytes, force: bool, *, owned_links_ok: bool, replaceable: bool = True) -> str | None:
    """For a plan: what is at ``path`` where a restore needs a folder (a symlink, a file), as a warning;
    None when it is a folder, nothing, or (``owned_links_ok``) a symlink root or this user owns."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    if stat.S_ISLNK(st.st_mode):
        if owned_links_ok and st.st_uid in (0, os.geteuid()):
            return None
        what = f"a symlink (to {os.fsdecode(os.readlink(path))})"
    else:
        what = "a file" if stat.S_ISREG(st.st_mode) else "a special file"
    if not replaceable:
        then = "not followed, never replaced: the restore refuses it"
    elif force:
        then = "--force replaces it with the folder from the snapshot"
    else:
        then = "not followed: the restore refuses it and everything below it (--force replaces it)"
    return f"{os.fsdecode(path)}: {what} is in the way of a folder; {then}"


def in_the_way_above(path: bytes, trusted: bytes, force: bool, *, replaceable: bool = True) -> str | None:
    """For a plan: the first thing :func:`open_folder` would refuse (or with ``force`` replace) on its
    way from ``trusted`` down to ``path``, as a warning; None when the way is clear."""
    here = trusted
    for name in [n for n in os.path.relpath(path, trusted).split(b"/") if n not in (b"", b".")]:
        here = os.path.join(here, name)
        problem = in_the_way(here, force, owned_links_ok=True, replaceable=replaceable)
        if problem is not None:
            return problem
        if not os.path.lexists(here):
            return None
    return None


def folder_warnings(
    dest: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, *, folder: bool = False
) -> list[str]:
    """For a plan: what :func:`folder_of` would refuse on its way to the folder ``dest`` goes in
    (``folder``: to ``dest`` itself), as a list of (at most one) warning."""
    path = os.fsencode(os.path.abspath(dest))
    target = path if folder else os.path.dirname(path)
    problem = in_the_way_above(target, os.fsencode(os.path.abspath(root or "/")), False, replaceable=False)
    return [] if problem is None else [problem]


class DirTree:
    """Descriptors of the folders below ``root`` (relative paths, ``b""`` is the root); thread-safe.

    ``create``: create ``root`` if missing (a restoring process; helpers pass ``root_id`` instead, the
    identity the restoring process saw). ``replace``: a symlink or file where a folder must be is removed
    and the folder created (else :class:`InTheWay`).
    """

    def __init__(
        self,
        root: bytes,
        *,
        replace: bool = False,
        create: bool = True,
        root_id: DirId | None = None,
        max_open: int = MAX_OPEN,
        trusted: bytes | None = None,
    ) -> None:
        self.root = root
        self.replace = replace
        if trusted is not None:
            fd = open_folder(root, trusted, create=create, replace=replace)
        else:
            if create:
                os.makedirs(root, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # as named: see the docstring
        st = os.fstat(fd)
        if root_id is not None and (st.st_dev, st.st_ino) != tuple(root_id):
            os.close(fd)
            raise InTheWay(f"{os.fsdecode(root)}: the restore target was replaced while restoring")
        #: Identity of every folder met so far: a folder opened again must still be this one.
        self.ids: dict[bytes, DirId] = {b"": (st.st_dev, st.st_ino)}
        #: Folders this restore created (nothing inside them can be in the way).
        self.created: set[bytes] = set()
        #: Folders refused (something in the way), with the error reported for them.
        self.blocked: set[bytes] = set()
        self._fds: OrderedDict[bytes, int] = OrderedDict({b"": fd})
        self._pins: dict[bytes, int] = {}
        self._max = max(2, max_open)
        self._lock = threading.RLock()
        self._new: list[bytes] = []

    def path(self, rel: bytes, name: bytes = b"") -> str:
        """``rel`` (and ``name`` in it) as a path for messages."""
        p = os.path.join(self.root, rel) if rel else self.root
        return os.fsdecode(os.path.join(p, name) if name else p)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    # ---- opening -----------------------------------------------------------------------------------
    def _check_blocked(self, rel: bytes) -> None:
        if not self.blocked:
            return
        p = rel
        while True:
            if p in self.blocked:
                raise InTheWay(
                    f"{self.path(rel)}: not restored (a folder above it was refused)", reported=True
                )
            if not p:
                return
            p = os.path.dirname(p)

    def _get(self, rel: bytes, *, make: bool) -> int:
        """The open descriptor of ``rel`` (lock held): cached, or opened (and with ``make`` created)
        below its parent's."""
        fd = self._fds.get(rel)
        if fd is not None:
            self._fds.move_to_end(rel)
            return fd
        self._check_blocked(rel)
        if not rel:
            raise InTheWay(f"{self.path(rel)}: the restore target is no longer open")
        parent, name = os.path.split(rel)
        pfd = self._get(parent, make=make)
        self._pins[parent] = self._pins.get(parent, 0) + 1  # not closed while its child is opened
        try:
            fd = self._open_child(pfd, rel, name, make=make)
        finally:
            self._unpin(parent)
        self._fds[rel] = fd
        self._evict()
        return fd

    def _open_child(self, pfd: int, rel: bytes, name: bytes, *, make: bool) -> int:
        known = self.ids.get(rel)
        if make and known is None:
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass
            else:
                self.created.add(rel)
        try:
            fd = os.open(name, O_DIR, dir_fd=pfd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT) or not make or known is not None:
                self.blocked.add(rel)
                raise InTheWay(self._in_the_way(pfd, rel, name, exc)) from exc
            fd = self._replace(pfd, rel, name, exc)
        st = os.fstat(fd)
        if known is not None and (st.st_dev, st.st_ino) != known:
            os.close(fd)
            self.blocked.add(rel)
            raise InTheWay(
                f"{self.path(rel)}: the folder was replaced while restoring; nothing more written in it"
            )
        if known is None:
            self._new.append(rel)
        self.ids[rel] = (st.st_dev, st.st_ino)
        return fd

    def _in_the_way(self, pfd: int, rel: bytes, name: bytes, exc: OSError) -> str:
        st = _lstat(pfd, name)
        if st is not None and stat.S_ISDIR(st.st_mode) and rel in self.ids:
            return f"{self.path(rel)}: the folder was replaced while restoring; nothing more written in it"
        if st is None or stat.S_ISDIR(st.st_mode):
            return f"{self.path(rel)}: cannot open folder: {exc.strerror}"
        what = _what(st)
        if rel in self.ids:
            return f"{self.path(rel)}: the folder was replaced by {what} while restoring; not followed"
        return f"{self.path(rel)}: {what} is in the way of a folder; not followed, nothing restored below it"

    def _replace(self, pfd: int, rel: bytes, name: bytes, exc: OSError) -> int:
        st = _lstat(pfd, name)
        if st is None or stat.S_ISDIR(st.st_mode) or not self.replace:
            self.blocked.add(rel)
            raise InTheWay(self._in_the_way(pfd, rel, name, exc)) from exc
        try:
            os.unlink(name, dir_fd=pfd)  # the symlink or file itself, never what it points to
            os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, O_DIR, dir_fd=pfd)
        except OSError as again:
            self.blocked.add(rel)
            raise InTheWay(
                f"{self.path(rel)}: cannot replace {_what(st)} with a folder: {again.strerror}"
            ) from again
        self.created.add(rel)
        return fd

    def _evict(self) -> None:
        while len(self._fds) > self._max:
            for rel in self._fds:  # least recently used first
                if rel and not self._pins.get(rel):
                    os.close(self._fds.pop(rel))
                    break
            else:
                return  # all pinned: over the limit for a moment

    def _unpin(self, rel: bytes) -> None:
        n = self._pins[rel] - 1
        if n:
            self._pins[rel] = n
        else:
            del self._pins[rel]

    # ---- the interface -----------------------------------------------------------------------------
    def sweep(self, rel: bytes, before_ns: int) -> None:
        """:func:`drop_stale_temps` in folder ``rel``."""
        with self.opened(rel) as fd:
            drop_stale_temps(fd, before_ns)

    def ensure(self, rel: bytes) -> list[bytes]:
        """Make sure folder ``rel`` exists (creating what is missing, never following a symlink); the
        folders met for the first time on the way (``rel`` last). Raises :class:`InTheWay`."""
        with self._lock:
            self._new = []
            if rel not in self._fds:
                self._get(rel, make=True)
            return self._new

    @contextmanager
    def opened(self, rel: bytes, expect: DirId | None = None) -> Iterator[int]:
        """The descriptor of the existing folder ``rel`` for the duration of the block (never closed
        meanwhile). ``expect``: the folder's identity as the restoring process recorded it."""
        with self._lock:
            if expect is not None and rel not in self.ids:
                self.ids[rel] = (expect[0], expect[1])
            fd = self._get(rel, make=False)
            self._pins[rel] = self._pins.get(rel, 0) + 1
        try:
            yield fd
        finally:
            with self._lock:
                self._unpin(rel)
                self._evict()


def temp_name(name: bytes) -> bytes:
    """An unpredictable temporary name beside ``name``."""
    return b"." + name[:200] + b"." + os.urandom(6).hex().encode() + TMP_SUFFIX


def create_temp(dfd: int, name: bytes) -> tuple[bytes, int]:
    """Create a new temporary file for ``name`` in folder ``dfd``: (its name, an open descriptor)."""
    for _ in range(8):
        tmp = temp_name(name)
        try:
            return tmp, os.open(tmp, O_TEMP, 0o600, dir_fd=dfd)
        except FileExistsError:
            continue  # someone guessed a name: draw another
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fsdecode(name))


def drop_stale_temps(dfd: int, before_ns: int) -> int:
    """Remove the temporary files an interrupted restore left in folder ``dfd`` (regular files named
    ``.*.safehold-partial`` whose inode changed last before ``before_ns``, so not those of a restore
    running now); how many."""
    removed = 0
    with os.scandir(dfd) as it:
        for entry in it:
            name = os.fsencode(entry.name)
            if not (name.startswith(b".") and name.endswith(TMP_SUFFIX)):
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_ctime_ns < before_ns:
                    os.unlink(name, dir_fd=dfd)
                    removed += 1
            except OSError:
                continue
    return removed


def open_temp(dfd: int, tmp: bytes, ino: int) -> int:
    """Open the temporary file ``tmp`` this restore created (inode ``ino``) again for writing."""
    fd = os.open(tmp, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    st = os.fstat(fd)
    if st.st_ino != ino or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.ESTALE, "the temporary file was replaced", os.fsdecode(tmp))
    return fd
