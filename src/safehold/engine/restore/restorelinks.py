"""The last step of a restore: hard links (to the first restored name of their inode), symlinks and
special files (FIFOs, sockets, device nodes), after every file's contents are in place.

Every entry is made relative to the descriptor of its folder (:mod:`safehold.engine.fs.safedir`): an
existing entry is examined and removed itself, never followed.
"""

from __future__ import annotations

import os
import stat
from typing import Protocol

from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node
from safehold.engine.fs.meta import apply_metadata_at, create_special
from safehold.engine.fs.safedir import DirTree, InTheWay
from safehold.errors import SafeholdError


class Tally(Protocol):
    """What this step counts and reports into (the restorer's ``RestoreStats``)."""

    files: int
    files_skipped: int
    errors: list[str]
    warnings: list[str]


def _already_there(
    tree: DirTree, dfd: int, name: bytes, node: Node, links: dict[tuple[int, int], bytes], overwrite: str
) -> bool:
    """With ``if-changed``: a hard link or symlink that is already exactly what the node says."""
    if overwrite != "if-changed":
        return False
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if node.type == FILE:
            src = links.get((node.device, node.inode))
            if src is None:
                return False
            sdir, sname = os.path.split(src)
            with tree.opened(sdir) as sfd:
                return os.path.samestat(st, os.stat(sname, dir_fd=sfd, follow_symlinks=False))
        if node.type == SYMLINK:
            return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dfd) == node.linktarget
    except (OSError, InTheWay):
        return False
    return False


def finish_others(
    items: list[tuple[bytes, Node]],
    links: dict[tuple[int, int], bytes],
    overwrite: str,
    restore_owner: bool,
    stats: Tally,
    tree: DirTree,
) -> None:
    """Create each (path relative to ``tree``'s root, node) that is not a folder: ``links`` maps (device,
    inode) to the relative path its contents were restored at. Findings go into ``stats``."""
    for rel, node in items:
        if node.type == DIR:
            continue
        d, name = os.path.split(rel)
        shown = tree.path(d, name)
        try:
            with tree.opened(d) as dfd:
                _finish_one(tree, dfd, name, shown, node, links, overwrite, restore_owner, stats)
        except InTheWay as exc:
            if not exc.reported:
                stats.errors.append(str(exc))
        except (OSError, SafeholdError) as exc:
            stats.errors.append(f"{shown}: {exc}")


def _finish_one(
    tree: DirTree,
    dfd: int,
    name: bytes,
    shown: str,
    node: Node,
    links: dict[tuple[int, int], bytes],
    overwrite: str,
    restore_owner: bool,
    stats: Tally,
) -> None:
    try:
        st: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if overwrite == "never" or _already_there(tree, dfd, name, node, links, overwrite):
            stats.files_skipped += 1
            return
        if stat.S_ISDIR(st.st_mode):
            stats.errors.append(f"{shown}: a folder is in the way")
            return
        os.unlink(name, dir_fd=dfd)
    if node.type == FILE:
        src = links.get((node.device, node.inode))
        if src is None:
            stats.errors.append(f"{shown}: hard link target was not restored")
            return
        sdir, sname = os.path.split(src)
        with tree.opened(sdir) as sfd:
            try:
                os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                stats.errors.append(f"{shown}: hard link target was not restored")
                return
        stats.files += 1
        return
    if node.type == SYMLINK:
        os.symlink(node.linktarget or b"", name, dir_fd=dfd)
    elif not create_special(name, node, dir_fd=dfd, shown=shown):
        return
    stats.warnings += apply_metadata_at(dfd, name, node, restore_owner=restore_owner, shown=shown)
