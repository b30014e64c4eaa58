"""What a file backup selects: exclude patterns, tag files and file-system boundaries.

The backup engine walks the tree itself and asks a :class:`Selector`, one directory at a time, which
entries of that directory belong in the snapshot (:meth:`Selector.scan`). The selector never raises for
an unreadable directory or entry: it records ``(path, message)`` in :attr:`Selector.errors` (and calls
``on_error`` if given) so the engine can mark the snapshot partial.

Exclude patterns (gitignore syntax, compiled with ``pathspec.GitIgnoreSpec``)
    are matched against the *absolute* path without its leading slash; directories are matched with a
    trailing slash. So ``*.log`` and ``vendor/`` match at any depth, ``/var/www/app/storage/cache`` is
    anchored, ``!keep.log`` re-includes. As in git, a pattern with a slash in the middle is anchored too:
    ``storage/cache`` matches only ``/storage/cache``; write ``**/storage/cache`` to match it at any depth.
    An excluded directory is not descended into, so nothing below it can be re-included (git's rule).

Tag files (``exclude_caches``, ``exclude_if_present``), restic's behaviour
    a directory that holds a valid ``CACHEDIR.TAG`` (a file starting with the Cache Directory Tagging
    signature) or a file named in ``exclude_if_present`` keeps only itself and its tag file(s): every
    other entry is left out. Keeping the folder and the tag means a restore recreates the (empty) folder
    with its permissions, which applications often expect, and the restored folder is still tagged, so
    the next backup excludes it again.

One file system (``one_file_system``), restic's behaviour
    only the file systems of the root paths are read. A directory on another device (a mount point) is
    kept as an empty directory; other entries on another device (bind-mounted files) are left out.

Directories are read with ``O_NOATIME`` where the kernel allows it (see :func:`open_noatime`), so a
backup does not change their access times; the engine should open files the same way.

Vanished entries (listed by the directory but gone before ``lstat``) are skipped silently: the snapshot
then reflects a moment when they did not exist. Every other ``lstat`` failure is an error.

Linux only: relies on ``os.scandir`` and ``st_dev`` semantics of Linux.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from safehold.engine.fs.patterns import PatternMatcher
from safehold.errors import ConfigError

#: First bytes of a valid CACHEDIR.TAG (https://bford.info/cachedir/).
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
CACHEDIR_TAG = b"CACHEDIR.TAG"
_CACHEDIR_TAG_STR = "CACHEDIR.TAG"

_ErrorCallback = Callable[[bytes, str], None]
Entry = tuple[bytes, os.stat_result]


def _error_text(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Selector:
    """Decides which entries of each directory go into a file backup.

    ``roots`` are the paths being backed up (bytes, str or path-like; made absolute). ``excludes`` are
    gitignore-style patterns (see the module docstring); an invalid pattern raises
    :class:`~safehold.errors.ConfigError`. ``on_error(path, message)`` is called for every error, in
    addition to appending it to :attr:`errors`.
    """

    def __init__(
        self,
        roots: Iterable[bytes | str | os.PathLike[Any]],
        *,
        excludes: Sequence[str] = (),
        one_file_system: bool = False,
        exclude_caches: bool = False,
        exclude_if_present: Sequence[str] = (),
        on_error: _ErrorCallback | None = None,
    ) -> None:
        self.errors: list[tuple[bytes, str]] = []
        self._on_error = on_error
        self.roots = [os.path.abspath(os.fsencode(r)) for r in roots]
        self.one_file_system = one_file_system
        self.exclude_caches = exclude_caches
        self._tags = {os.fsdecode(n) for n in exclude_if_present}
        for tag in self._tags:
            if not tag or "/" in tag:
                raise ConfigError(f"exclude_if_present takes file names, not paths: {tag!r}")
        matcher = PatternMatcher(excludes) if excludes else None
        self._matcher = matcher if matcher is not None and matcher.active else None
        self._devices: set[int] = set()
        if one_file_system:
            for root in self.roots:
                try:
                    self._devices.add(os.lstat(root).st_dev)
                    self._devices.add(os.stat(root).st_dev)
                except OSError:
                    pass  # reported once, by root_selected

    # -- reporting ----------------------------------------------------------------------------------

    def _report(self, path: bytes, message: str) -> None:
        self.errors.append((path, message))
        if self._on_error is not None:
            self._on_error(path, message)

    # -- patterns -----------------------------------------------------------------------------------

    def is_excluded(self, path: bytes, *, is_dir: bool) -> bool:
        """Whether the exclude patterns exclude this one path (ancestors are not considered)."""
        if self._matcher is None:
            return False
        absolute = os.path.abspath(path)
        parent, name = os.path.split(absolute)
        if not name:  # the file-system root is never excluded
            return False
        return self._matcher.excluded(_match_prefix(parent), os.fsdecode(name), is_dir)

    def root_selected(self, path: bytes) -> bool:
        """Whether a root path is backed up at all: neither it nor one of its ancestors is excluded.

        A root that cannot be ``lstat``-ed is reported in :attr:`errors` and not selected.
        """
        absolute = os.path.abspath(path)
        try:
            st = os.lstat(absolute)
        except OSError as exc:
            self._report(absolute, f"cannot read backup root: {_error_text(exc)}")
            return False
        if self._matcher is None:
            return True
        parts = [p for p in absolute.split(b"/") if p]
        for i in range(len(parts)):
            is_dir = i < len(parts) - 1 or stat.S_ISDIR(st.st_mode)
            if self.is_excluded(b"/" + b"/".join(parts[: i + 1]), is_dir=is_dir):
                return False
        return True

    # -- directory scan -----------------------------------------------------------------------------

    def scan(self, dirpath: bytes, dir_stat: os.stat_result) -> list[Entry]:
        """The selected entries ``(name, lstat)`` of the directory ``dirpath``, sorted by name.

        ``dir_stat`` is the directory's own ``lstat``. Errors are recorded, never raised; an unreadable
        directory yields ``[]``.
        """
        if self.one_file_system and dir_stat.st_dev not in self._devices:
            return []  # a mount point: kept as an empty directory
        absolute = os.path.abspath(dirpath)
        # scandir(fd) yields str names (surrogate-escaped); os.fsencode gives back the exact bytes.
        raw: list[tuple[str, os.stat_result]] = []
        try:
            fd = open_noatime(absolute, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with os.scandir(fd) as it:
                    for de in it:
                        try:
                            raw.append((de.name, de.stat(follow_symlinks=False)))
                        except FileNotFoundError:
                            continue  # vanished since the listing
                        except OSError as exc:
                            where = os.path.join(absolute, os.fsencode(de.name))
                            self._report(where, f"cannot stat: {_error_text(exc)}")
            finally:
                os.close(fd)
        except OSError as exc:
            self._report(absolute, f"cannot read directory: {_error_text(exc)}")
            return []

        if self._tags or self.exclude_caches:
            tags = self._tag_entries(absolute, raw)
            if tags is not None:
                raw = tags

        s_isdir = stat.S_ISDIR
        if self.one_file_system:
            devices = self._devices
            raw = [e for e in raw if e[1].st_dev in devices or s_isdir(e[1].st_mode)]

        if self._matcher is not None:
            dm = self._matcher.for_dir(_match_prefix(absolute))
            raw = [e for e in raw if not dm.excluded(e[0], s_isdir(e[1].st_mode))]

        fsencode = os.fsencode
        entries = [(fsencode(name), st) for name, st in raw]
        entries.sort(key=_entry_name)
        return entries

    def _tag_entries(
        self, dirpath: bytes, entries: list[tuple[str, os.stat_result]]
    ) -> list[tuple[str, os.stat_result]] | None:
        """The tag entries if the directory is tagged (only they are kept), else None."""
        tags: list[tuple[str, os.stat_result]] = []
        for name, st in entries:
            if name in self._tags or (
                self.exclude_caches
                and name == _CACHEDIR_TAG_STR
                and stat.S_ISREG(st.st_mode)
                and _is_valid_cachedir_tag(os.path.join(dirpath, CACHEDIR_TAG))
            ):
                tags.append((name, st))
        return tags or None


def open_noatime(path: bytes, flags: int) -> int:
    """``os.open`` with ``O_NOATIME`` (so a backup leaves access times alone) when permitted.

    The kernel allows O_NOATIME only to the file's owner or a process with CAP_FOWNER; otherwise the
    open is retried without it. ``O_CLOEXEC`` is always added.
    """
    flags |= os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        return os.open(path, flags)


def _entry_name(entry: Entry) -> bytes:
    return entry[0]


def _match_prefix(absolute_dir: bytes) -> str:
    """The matching form of a directory: no leading slash, a trailing slash ('' for the root)."""
    stripped = absolute_dir.strip(b"/")
    return os.fsdecode(stripped) + "/" if stripped else ""


def _is_valid_cachedir_tag(path: bytes) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.read(fd, len(CACHEDIR_SIGNATURE))
    except OSError:
        return False
    finally:
        os.close(fd)
    return head == CACHEDIR_SIGNATURE
