"""``restore --verify``: read restored files back and compare them, blob by blob, with the snapshot."""

from __future__ import annotations

import os

from safehold.engine.repository import Repository
from safehold.engine.tree import DIR, FILE, Node
from safehold.engine.treewalk import PathFilter, walk_wanted


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
