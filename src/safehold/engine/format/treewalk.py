"""Reading a snapshot's trees: find a path, walk every node, fetch all trees of a snapshot in bulk, and
filter paths with include/exclude patterns. Used by restore, check, ls, diff, dump and export.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from safehold.backends.base import FileType, Handle
from safehold.engine.format.pack import TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, Node, decode_tree
from safehold.errors import IntegrityError, NotFound

if TYPE_CHECKING:
    import pathspec

#: Stored tree packs kept while the trees of a snapshot are fetched from remote storage.
_TREE_PACK_CACHE = 256 * 1024 * 1024


def load_tree(repo: Repository, tree_id: bytes) -> list[Node]:
    """The nodes of a tree, its names checked by the path-safety rule (see :mod:`safehold.engine.format.tree`)."""
    return decode_tree(repo.load_blob(TREE, tree_id), tree_id)


def find_node(repo: Repository, root_tree: bytes, subpath: str) -> Node:
    """The node at ``subpath`` ('/'-separated, relative to the snapshot root)."""
    node = Node(name=b"", type=DIR, subtree=root_tree)
    for part in [os.fsencode(p) for p in subpath.strip("/").split("/") if p]:
        if node.type != DIR or node.subtree is None:
            raise NotFound(
                f"{subpath} is not a folder in the snapshot",
                hint="'safehold ls SNAPSHOT' lists the snapshot's paths.",
            )
        match = [n for n in load_tree(repo, node.subtree) if n.name == part]
        if not match:
            raise NotFound(
                f"{subpath} does not exist in the snapshot",
                hint="'safehold ls SNAPSHOT' lists the snapshot's paths.",
            )
        node = match[0]
    return node


def walk(
    repo: Repository,
    tree_id: bytes,
    prefix: bytes = b"",
    *,
    cache: Mapping[bytes, bytes] | None = None,
) -> Iterator[tuple[bytes, Node]]:
    """Every (relative path, node) below a tree, parents before children.

    ``cache`` maps tree ids to their plaintext (see :func:`prefetch_trees`); trees missing from it are
    loaded from the repository.
    """
    raw = cache.get(tree_id) if cache is not None else None
    try:
        nodes = decode_tree(raw, tree_id) if raw is not None else load_tree(repo, tree_id)
    except IntegrityError as exc:
        if prefix:
            exc.message = f"below {os.fsdecode(prefix)!r}: {exc.message}"
            exc.args = (exc.message,)
        raise
    for n in nodes:
        path = prefix + b"/" + n.name if prefix else n.name
        yield path, n
        if n.type == DIR and n.subtree is not None:
            yield from walk(repo, n.subtree, path, cache=cache)


def walk_wanted(
    repo: Repository,
    tree_id: bytes,
    flt: PathFilter,
    *,
    cache: Mapping[bytes, bytes] | None = None,
) -> Iterator[tuple[bytes, Node, bool | None]]:
    """:func:`walk` through ``flt``: (path, node, wanted) of every node that is neither excluded nor below
    an excluded folder; ``wanted`` as :meth:`PathFilter.wanted` says (True or None, never False)."""
    skipped: list[bytes] = []
    for rel, node in walk(repo, tree_id, cache=cache):
        if any(rel.startswith(s + b"/") for s in skipped[-64:]):
            continue
        want = flt.wanted(rel, node.type == DIR)
        if want is False:
            if node.type == DIR:
                skipped.append(rel)
            continue
        yield rel, node, want


def prefetch_trees(repo: Repository, tree_id: bytes, workers: int) -> dict[bytes, bytes]:
    """Load every tree below ``tree_id`` (itself included), breadth-first; tree id -> plaintext.

    Each tree pack involved is read whole, once, ``workers`` packs at a time (one request per pack
    instead of one per folder: what matters on remote storage), and kept in its stored (compressed,
    encrypted) form while the walk needs it. Errors raise as :func:`load_tree` would.
    """
    repo.load_index()
    out: dict[bytes, bytes] = {}
    packs: dict[bytes, bytes] = {}
    level = [tree_id]

    def fetch(pack_id: bytes) -> tuple[bytes, bytes]:
        return pack_id, repo.backend.load(Handle(FileType.DATA, pack_id.hex()))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="safehold-trees") as pool:
        while level:
            locs = {}
            for tid in level:
                loc = repo.index.lookup(tid)
                if loc is None or loc.type != TREE:
                    raise IntegrityError(f"tree blob {tid.hex()[:16]} is not in the index")
                locs[tid] = loc
            missing = {loc.pack_id for loc in locs.values()} - packs.keys()
            if sum(len(b) for b in packs.values()) > _TREE_PACK_CACHE:
                packs.clear()
                missing = {loc.pack_id for loc in locs.values()}
            packs.update(pool.map(fetch, sorted(missing)))
            nxt: dict[bytes, None] = {}
            for tid, loc in locs.items():
                sealed = memoryview(packs[loc.pack_id])[loc.offset : loc.offset + loc.length]
                raw = repo.decode_blob(tid, loc, loc.envelope, sealed)
                out[tid] = raw
                for n in decode_tree(raw, tid):
                    if n.type == DIR and n.subtree is not None and n.subtree not in out:
                        nxt[n.subtree] = None
            level = [t for t in nxt if t not in out]
    return out


class PathFilter:
    def __init__(self, includes: list[str], excludes: list[str], base: bytes) -> None:
        self.inc = _spec(includes)
        self.exc = _spec(excludes)
        self.base = base

    def wanted(self, rel: bytes, is_dir: bool) -> bool | None:
        """True: restore; False: skip (and below); None: undecided dir (restore only if children are)."""
        p = os.fsdecode(os.path.join(self.base, rel) if self.base else rel) + ("/" if is_dir else "")
        if self.exc is not None and self.exc.match_file(p):
            return False
        if self.inc is None or self.inc.match_file(p):
            return True
        return None


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    """A ``pathspec.GitIgnoreSpec`` of ``lines``, None without any (pathspec is imported only then: most
    restores and checks have no patterns, and it costs ~40 ms to import)."""
    if not lines:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)
