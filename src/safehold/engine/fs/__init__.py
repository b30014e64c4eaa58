"""The file-system layer of file backup and restore (Linux).

* :mod:`.select` — :class:`Selector`: which entries of a directory a backup takes (gitignore-style
  excludes, CACHEDIR.TAG / exclude-if-present tags, one file system). Errors are collected, not raised.
* :mod:`.meta` — :func:`node_from_stat` captures a path's metadata into a tree
  :class:`~safehold.engine.format.tree.Node`; :func:`apply_metadata`, :func:`create_special` and
  :func:`write_sparse_aware` put files and their metadata back at restore.

All paths are ``bytes`` (``os.fsencode``) so names that are not UTF-8 survive. Import from the
submodules: this package imports nothing, so restore helpers load only what they use.
"""
