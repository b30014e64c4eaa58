"""The last step of a restore: hard links (to the first restored name of their inode), symlinks and
special files (FIFOs, sockets, device nodes), after every file's contents are in place.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from safehold.engine.fs.meta import apply_metadata, create_special
from safehold.engine.tree import DIR, FILE, SYMLINK, Node
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    from safehold.engine.restorer import RestoreStats


def _already_there(final: bytes, node: Node, links: dict[tuple[int, int], bytes], overwrite: str) -> bool:
    """With ``if-changed``: a hard link or symlink that is already exactly what the node says."""
    if overwrite != "if-changed":
        return False
    try:
        st = os.lstat(final)
        if node.type == FILE:
            src = links.get((node.device, node.inode))
            return src is not None and os.path.samestat(st, os.lstat(src))
        if node.type == SYMLINK:
            return stat.S_ISLNK(st.st_mode) and os.readlink(final) == node.linktarget
    except OSError:
        return False
    return False


def finish_others(
    items: list[tuple[bytes, Node]],
    links: dict[tuple[int, int], bytes],
    overwrite: str,
    restore_owner: bool,
    stats: RestoreStats,
) -> None:
    """Create each (final path, node) that is not a folder: ``links`` maps (device, inode) to the path
    its contents were restored at. Findings go into ``stats``."""
    for final, node in items:
        if node.type == DIR:
            continue
        try:
            if os.path.lexists(final):
                if overwrite == "never" or _already_there(final, node, links, overwrite):
                    stats.files_skipped += 1
                    continue
                if os.path.isdir(final) and not os.path.islink(final):
                    stats.errors.append(f"{os.fsdecode(final)}: a folder is in the way")
                    continue
                os.unlink(final)
            if node.type == FILE:
                src = links.get((node.device, node.inode))
                if src is None or not os.path.exists(src):
                    stats.errors.append(f"{os.fsdecode(final)}: hard link target was not restored")
                    continue
                os.link(src, final)
                stats.files += 1
                continue
            if node.type == SYMLINK:
                os.symlink(node.linktarget or b"", final)
            elif not create_special(final, node):
                continue
            stats.warnings += apply_metadata(final, node, restore_owner=restore_owner)
        except (OSError, SafeholdError) as exc:
            stats.errors.append(f"{os.fsdecode(final)}: {exc}")
