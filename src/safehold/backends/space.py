"""Free space where a repository lives: :class:`Space` and :func:`space_of`.

A backend that can tell has a ``space()`` method returning a :class:`Space` (local: ``statvfs`` of the
repository folder; SFTP: OpenSSH's ``statvfs@openssh.com`` extension, where the server offers it). Object
storage has no such notion: :func:`space_of` then returns the reason the figures are missing instead,
so a preflight can say what it skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from safehold.backends.base import Backend


@dataclass(frozen=True)
class Space:
    """Figures of one file system, as the user running safehold sees them (``free`` and ``free_inodes``
    are what it may still use, not what root could). ``device`` tells file systems apart (two folders
    with the same device share their free space); None when unknown (a remote server's)."""

    path: str
    total: int
    free: int
    total_inodes: int
    free_inodes: int
    device: int | None = None
    #: bytes in use (blocks not free); None: unknown, then everything not ``free`` counts as used
    used: int | None = None

    @property
    def used_fraction(self) -> float:
        """How full it is, as ``df`` counts it: used / (used + free to the user), so blocks reserved
        for root count neither as used nor as free."""
        used = self.total - self.free if self.used is None else self.used
        return used / (used + self.free) if used + self.free else 0.0


def from_statvfs(path: str, st: os.statvfs_result, device: int | None = None) -> Space:
    size = st.f_frsize or st.f_bsize
    return Space(
        path, st.f_blocks * size, st.f_bavail * size, st.f_files, st.f_favail, device,
        (st.f_blocks - st.f_bfree) * size,
    )  # fmt: skip


def local_space(path: str) -> Space:
    """The file system of ``path``, or of its nearest existing parent (a folder not created yet);
    raises OSError when even that cannot be read."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return from_statvfs(path, os.statvfs(probe), os.stat(probe).st_dev)


def space_of(backend: Backend) -> Space | str:
    """The repository's free space, or why it is not known (the storage has no such figure, or the
    server does not report it). Raises BackendError when asking failed."""
    from safehold.backends.wrappers import unwrap

    inner = unwrap(backend)
    ask = getattr(inner, "space", None)
    if ask is None:
        return f"{type(inner).__name__.removesuffix('Backend') or 'this'} storage does not report free space"
    found: Space | str = ask()
    return found
