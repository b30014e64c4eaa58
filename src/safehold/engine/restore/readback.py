"""``restore --verify`` and drills: read restored files back and compare them with the snapshot (contents
blob by blob; for drills also types, modes, links, times and owners)."""

from __future__ import annotations

import os
import stat

from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node
from safehold.engine.format.treewalk import PathFilter, walk, walk_wanted


def verify_restored(
    repo: Repository,
    start: Node,
    target: bytes,
    *,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
    base: bytes = b"",
) -> list[str]:
    """Every difference between restored regular files and the snapshot (empty when all match)."""
    errors: list[str] = []
    if start.type != DIR or start.subtree is None:
        items = [(start.name, start)]
    else:
        flt = PathFilter(includes or [], excludes or [], base)
        # The restore's own selection (treewalk.walk_wanted), so that the two cannot disagree.
        items = [
            (rel, n) for rel, n, want in walk_wanted(repo, start.subtree, flt) if n.type == FILE and want
        ]
    for rel, node in items:
        if node.type != FILE:
            continue
        path = os.path.join(target, rel)
        shown = os.fsdecode(path)
        try:
            with open(path, "rb", buffering=0) as f:
                if os.fstat(f.fileno()).st_size != node.size:
                    errors.append(f"{shown}: size differs from the snapshot")
                    continue
                for blob_id in node.content:
                    loc = repo.index.lookup(blob_id)
                    if loc is None:
                        errors.append(f"{shown}: blob {blob_id.hex()[:16]} missing from the index")
                        break
                    if repo.keys.blob_id_of(f.read(loc.raw_length)) != blob_id:
                        errors.append(f"{shown}: content differs from the snapshot")
                        break
        except OSError as exc:
            errors.append(f"{shown}: cannot be read back: {exc.strerror}")
    return errors


_KIND_OF_MODE = {stat.S_IFDIR: DIR, stat.S_IFREG: FILE, stat.S_IFLNK: SYMLINK}


def verify_tree(repo: Repository, start: Node, target: bytes, *, owners: bool | None = None) -> list[str]:
    """Every difference between the tree restored at ``target`` and the snapshot's ``start`` folder:
    missing or extra entries, types, permission bits, symlink targets, file sizes, modification times,
    owners (``owners``; default: when running as root), hard links that were not recreated, and every
    file's content blob by blob (:func:`verify_restored`). Empty when the restore is exact."""
    if owners is None:
        owners = os.geteuid() == 0
    errors: list[str] = []
    if start.type != DIR or start.subtree is None:
        return verify_restored(repo, start, target)
    seen: set[bytes] = set()
    links: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for rel, node in walk(repo, start.subtree):
        path = os.path.join(target, rel)
        shown = os.fsdecode(rel)
        seen.add(rel)
        try:
            st = os.lstat(path)
        except OSError as exc:
            errors.append(f"{shown}: missing from the restore ({exc.strerror})")
            continue
        kind = _KIND_OF_MODE.get(stat.S_IFMT(st.st_mode), "other")
        if kind != node.type and not (node.type not in (DIR, FILE, SYMLINK) and kind == "other"):
            errors.append(f"{shown}: restored as {kind}, the snapshot holds a {node.type}")
            continue
        if node.type != SYMLINK and stat.S_IMODE(st.st_mode) != node.mode:
            errors.append(f"{shown}: mode {stat.S_IMODE(st.st_mode):o}, the snapshot has {node.mode:o}")
        if owners and (st.st_uid, st.st_gid) != (node.uid, node.gid):
            errors.append(f"{shown}: owner {st.st_uid}:{st.st_gid}, the snapshot has {node.uid}:{node.gid}")
        if node.type == SYMLINK and os.readlink(path) != (node.linktarget or b""):
            errors.append(f"{shown}: symlink target differs from the snapshot")
        if node.type == FILE:
            if st.st_size != node.size:
                errors.append(f"{shown}: size {st.st_size}, the snapshot has {node.size}")
            elif st.st_mtime_ns != node.mtime_ns:
                errors.append(f"{shown}: modification time differs from the snapshot")
            if node.links > 1 and node.inode:
                links.setdefault((node.device, node.inode), set()).add((st.st_dev, st.st_ino))
    for (_dev, ino), restored in links.items():
        if len(restored) > 1:
            errors.append(f"hard links of inode {ino} were restored as {len(restored)} separate files")
    for dirpath, dirnames, filenames in os.walk(target):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), target)
            if rel not in seen:
                errors.append(f"{os.fsdecode(rel)}: in the restore, not in the snapshot")
    if not errors:
        errors = verify_restored(repo, start, target)
    return errors
