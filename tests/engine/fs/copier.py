"""A tiny tree copier built only from safehold.engine.fs: the round-trip tests' stand-in for backup+restore."""

from __future__ import annotations

import os
from pathlib import Path

from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node
from safehold.engine.fs.meta import (
    apply_metadata,
    create_special,
    node_from_stat,
    write_sparse_aware,
)
from safehold.engine.fs.select import Selector, open_noatime

BLOCK = 1 << 20


def copy_tree(src: Path | bytes, dst: Path | bytes, *, selector: Selector | None = None) -> list[str]:
    """Copy ``src`` to the new folder ``dst`` through Selector/node_from_stat/apply_metadata.

    Returns the metadata warnings. Nodes are captured before any content is read (as a backup does).
    """
    s_root, d_root = os.fsencode(src), os.fsencode(dst)
    sel = selector or Selector([s_root])
    warnings: list[str] = []
    first_path: dict[tuple[int, int], bytes] = {}
    restore_owner = os.geteuid() == 0

    def copy_dir(s: bytes, d: bytes, st: os.stat_result) -> None:
        for name, cst in sel.scan(s, st):
            sp, dp = os.path.join(s, name), os.path.join(d, name)
            node = node_from_stat(name, sp, cst)
            if node.type == DIR:
                os.mkdir(dp, 0o700)
                copy_dir(sp, dp, cst)
            elif node.type == FILE:
                key = (node.device, node.inode)
                if node.links > 1 and key in first_path:
                    os.link(first_path[key], dp)
                    continue
                first_path[key] = dp
                _copy_content(sp, dp, node)
            elif node.type == SYMLINK:
                assert node.linktarget is not None
                os.symlink(node.linktarget, dp)
            elif not create_special(dp, node):
                continue
            warnings.extend(apply_metadata(dp, node, restore_owner=restore_owner))
        root_node = node_from_stat(os.path.basename(s), s, st)
        warnings.extend(apply_metadata(d, root_node, restore_owner=restore_owner))

    st = os.lstat(s_root)
    os.mkdir(d_root, 0o700)
    copy_dir(s_root, d_root, st)
    return warnings


def _copy_content(sp: bytes, dp: bytes, node: Node) -> None:
    fin = open_noatime(sp, os.O_RDONLY)
    try:
        fout = os.open(dp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fout, node.size)
            offset = 0
            while True:
                data = os.read(fin, BLOCK)
                if not data:
                    break
                write_sparse_aware(fout, offset, data)
                offset += len(data)
        finally:
            os.close(fout)
    finally:
        os.close(fin)
