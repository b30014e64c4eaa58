"""The file-system layer of file backup and restore (Linux).

* :mod:`.select` — :class:`Selector`: which entries of a directory a backup takes (gitignore-style
  excludes, CACHEDIR.TAG / exclude-if-present tags, one file system). Errors are collected, not raised.
* :mod:`.meta` — :func:`node_from_stat` captures a path's metadata into a tree
  :class:`~safehold.engine.tree.Node`; :func:`apply_metadata`, :func:`create_special` and
  :func:`write_sparse_aware` put files and their metadata back at restore.

All paths are ``bytes`` (``os.fsencode``) so names that are not UTF-8 survive.
"""

from safehold.sources.fs.meta import (
    SPARSE_BLOCK,
    SpecialFileError,
    apply_metadata,
    create_special,
    node_from_stat,
    node_type,
    read_xattrs,
    write_sparse_aware,
)
from safehold.sources.fs.select import CACHEDIR_SIGNATURE, CACHEDIR_TAG, Selector

__all__ = [
    "CACHEDIR_SIGNATURE",
    "CACHEDIR_TAG",
    "SPARSE_BLOCK",
    "Selector",
    "SpecialFileError",
    "apply_metadata",
    "create_special",
    "node_from_stat",
    "node_type",
    "read_xattrs",
    "write_sparse_aware",
]
