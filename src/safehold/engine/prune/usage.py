"""Which index entries the snapshots use: one mark per entry over the index's columns.

:func:`mark_used` walks every tree of the given roots breadth-first (all snapshots at once, each tree once)
and marks, in a boolean array beside :class:`~safehold.engine.format.index.IndexColumns`, the entries of every
tree and data blob it meets. No set of blob ids and no object per blob is built: ids are looked up in
batches with :meth:`IndexColumns.find`. A blob stored more than once (two packs hold it, e.g. after an
interrupted backup or prune) has all its entries marked; prune then keeps one of them.

Trees are read pack by pack (``workers`` packs at a time): on remote storage a tree pack holding several
wanted trees is fetched whole, once per level of the walk; locally each tree is a ranged read.

Anything missing or unreadable (a tree or data blob not in the index, a tree that does not decrypt or
decode) is collected in :attr:`Usage.problems` with where it was met; the walk goes on, so every problem
is named. A caller that deletes data must refuse to when there is any (see :mod:`safehold.engine.prune.pruner`).
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from safehold.backends.base import FileType, Handle
from safehold.engine.format.index import BlobLocation
from safehold.engine.format.indexfile import IndexColumns
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, tree_links
from safehold.engine.progress import NullProgress, Progress
from safehold.errors import SafeholdError

#: Data blob ids gathered before they are looked up and marked in one batch.
_BATCH = 65536
#: Problems named one by one; past this many only counted.
MAX_PROBLEMS = 50


@dataclass
class Usage:
    cols: IndexColumns
    #: per index entry: does a snapshot use this blob (every entry of a blob stored twice is marked)
    used: npt.NDArray[np.bool_]
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    trees: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def duplicate_groups(cols: IndexColumns) -> npt.NDArray[np.int64]:
    """A number per entry, equal for entries of the same blob id (they are adjacent in the columns)."""
    n = cols.rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    same = np.zeros(n - 1, dtype=bool)
    cand = np.flatnonzero(cols.prefix[1:] == cols.prefix[:-1])
    if len(cand):
        same[cand] = (cols.ids[cand + 1] == cols.ids[cand]).all(axis=1)
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(~same, dtype=np.int64)])


def _shown(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _ids_array(ids: list[bytes]) -> npt.NDArray[np.uint8]:
    return np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(ids), 32)


def mark_used(
    repo: Repository,
    roots: list[tuple[bytes, str]],
    *,
    progress: Progress | None = None,
    workers: int = 2,
) -> Usage:
    """Mark the entries used by the trees ``roots`` (``(tree id, where)``, e.g. the snapshots' roots)."""
    progress = progress or NullProgress()
    repo.load_index()
    cols = repo.index.columns()
    usage = Usage(cols, np.zeros(cols.rows, dtype=bool))
    types = cols.blob_type()
    remote = not repo.backend.properties.local
    data_ids: list[bytes] = []
    data_where: list[str] = []  # the folder of each id, and its file: names are made only for problems
    data_names: list[bytes] = []

    def flush_data() -> None:
        if not data_ids:
            return
        rows = cols.find(_ids_array(data_ids))
        bad = np.flatnonzero((rows < 0) | (types[np.maximum(rows, 0)] != DATA))
        for k in bad.tolist():
            where = f"{data_where[k]}/{_shown(data_names[k])}"
            usage.problem(f"{where}: data blob {data_ids[k].hex()[:16]} is not in the index")
        usage.used[rows[rows >= 0]] = True
        data_ids.clear()
        data_where.clear()
        data_names.clear()

    def fetch(packno: int, items: list[tuple[bytes, str, int]]) -> list[tuple[bytes, str, bytes | str]]:
        """The plaintext of each tree (or the reason it could not be read)."""
        pack_hex = cols.packs[packno].hex()
        h = Handle(FileType.DATA, pack_hex)
        out: list[tuple[bytes, str, bytes | str]] = []
        whole: bytes | None = None
        try:
            if remote and len(items) > 1:
                whole = repo.backend.load(h)
        except SafeholdError as exc:
            return [(tid, where, f"pack {pack_hex[:16]}: {exc}") for tid, where, _ in items]
        for tid, where, row in items:
            loc = BlobLocation(
                cols.packs[packno],
                cols.envelopes[packno],
                TREE,
                int(cols.offset[row]),
                int(cols.length[row]),
                int(cols.raw[row]),
                bool(cols.flags[row] & 0x80),
            )
            try:
                if whole is not None:
                    sealed: bytes | memoryview = memoryview(whole)[loc.offset : loc.offset + loc.length]
                else:
                    sealed = repo.backend.load(h, loc.offset, loc.length)
                out.append((tid, where, repo.decode_blob(tid, loc, loc.envelope, sealed)))
            except SafeholdError as exc:
                out.append((tid, where, str(exc)))
        return out

    level = list(dict.fromkeys(roots))
    progress.start("find used data", total_files=len(level))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="safehold-usage") as pool:
        while level:
            rows = cols.find(_ids_array([t for t, _ in level]))
            by_pack: dict[int, list[tuple[bytes, str, int]]] = defaultdict(list)
            for (tid, where), row in zip(level, rows.tolist(), strict=True):
                if row < 0 or types[row] != TREE:
                    usage.problem(f"{where}: tree {tid.hex()[:16]} is not in the index")
                    continue
                if usage.used[row]:
                    continue  # walked already (another snapshot or folder has the same tree)
                usage.used[row] = True
                by_pack[int(cols.pack[row])].append((tid, where, row))
            nxt: list[tuple[bytes, str]] = []
            for results in pool.map(lambda kv: fetch(*kv), sorted(by_pack.items())):
                for tid, where, raw in results:
                    usage.trees += 1
                    if isinstance(raw, str):
                        usage.problem(f"{where}: tree {tid.hex()[:16]}: {raw}")
                        continue
                    try:
                        nodes = tree_links(raw, tid)
                    except SafeholdError as exc:
                        usage.problem(f"{where}: {exc}")
                        continue
                    for kind, name, content, subtree in nodes:
                        if kind == FILE:
                            data_ids += content
                            data_where += [where] * len(content)
                            data_names += [name] * len(content)
                        elif kind == DIR:
                            if subtree is None:
                                usage.problem(f"{where}/{_shown(name)}: folder without a tree")
                            else:
                                nxt.append((subtree, f"{where}/{_shown(name)}"))
                    if len(data_ids) >= _BATCH:
                        flush_data()
                progress.advance(files=len(results))
            flush_data()
            level = nxt
    progress.finish()
    # every entry of a used blob is used (the copies are sorted out by the caller)
    groups = duplicate_groups(cols)
    if len(groups):
        group_used = np.zeros(int(groups[-1]) + 1, dtype=bool)
        group_used[groups[usage.used]] = True
        usage.used = group_used[groups]
    return usage
