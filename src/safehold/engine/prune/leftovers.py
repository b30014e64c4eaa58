"""Temporary files that interrupted writes left in the storage: found by check, removed by prune.

Apart from :mod:`safehold.engine.prune.pruner` so that check, which reports them, does not import the
pruner's numpy (a check of a small repository needs none).
"""

from __future__ import annotations

from collections.abc import Callable

from safehold.backends.base import Backend, FileInfo
from safehold.backends.wrappers import unwrap

#: Temporary files of interrupted writes older than this are removed by prune and reported by check.
LEFTOVER_AGE = 86400.0


def temporary_leftovers(backend: Backend, older_than: float = LEFTOVER_AGE) -> list[FileInfo]:
    """Temporary files that interrupted writes left in the storage (``.tmp-*`` of a local repository),
    older than ``older_than`` seconds; [] for a storage that leaves none or cannot list them."""
    find = getattr(unwrap(backend), "leftovers", None)
    return list(find(older_than)) if find is not None else []


def remove_leftovers(backend: Backend, files: list[FileInfo], check: Callable[[], None]) -> int:
    remove = getattr(unwrap(backend), "remove_leftover", None)
    if remove is None:
        return 0
    for fi in files:
        check()
        remove(fi.name)
    return len(files)
