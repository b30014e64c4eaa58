"""Repository integrity checks. Every finding is collected; the check never stops at the first.

Structure (always): index files load and match their names; every pack the index names exists and its
header agrees with the index; every snapshot loads; every tree of every snapshot loads and decodes; every
blob a tree references is in the index with the right type. Packs that no index names are *notes*, not
errors: an interrupted backup leaves them, and prune removes them; but when anything else is wrong the
index may be what is damaged, and the note says to run ``repair index`` instead. ``advice`` says what to
run about the errors, naming the snapshots affected.

Data (``read_data``): every selected pack is read, its SHA-256 compared with its name, and every blob in
it decrypted, decompressed and compared with its id. Local packs are read in parts of ``READ_PART``
bytes (a reader holds one part and one blob, not a pack); remote packs in one request each.
"""

from __future__ import annotations

import queue
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from safehold.backends.base import FileType, Handle
from safehold.engine.check.trees import TreeReader
from safehold.engine.format.blobproof import PackProof, VerifierProcess, read_tail
from safehold.engine.format.index import BlobLocation
from safehold.engine.format.indexpacks import PackColumns, same_places
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, tree_refs
from safehold.engine.helper import HelperError
from safehold.engine.memtune import gc_paused
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.util import human_bytes
from safehold.errors import ColdStorageError, IntegrityError, SafeholdError, UsageError

#: ``--read-data`` of at least this many packs runs in helper processes (fewer are not worth starting them).
HELPERS_FROM = 4
#: Largest read from a local pack at ``--read-data``.
READ_PART = 2 * 1024 * 1024


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Packs in an archive storage class that could not be read (header or data): not damage.
    cold: list[str] = field(default_factory=list)
    snapshots: int = 0
    trees: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    #: short ids of snapshots that reference something missing or damaged
    affected: list[str] = field(default_factory=list)
    #: what to do about the errors, in order (the repair commands)
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__) | {"ok": self.ok}


def parse_subset(spec: str) -> tuple[str, float, int, int]:
    """``N%`` -> ("pct", N, 0, 0); ``K/M`` -> ("slice", 0, K, M)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%", spec.strip())
    if m and 0 < float(m.group(1)) <= 100:
        return ("pct", float(m.group(1)), 0, 0)
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if m and 1 <= int(m.group(1)) <= int(m.group(2)):
        return ("slice", 0.0, int(m.group(1)), int(m.group(2)))
    raise UsageError(f"--read-data-subset takes N% or K/M, not {spec!r}")


def select_packs(packs: list[str], subset: str | None) -> list[str]:
    if subset is None:
        return packs
    kind, pct, k, m = parse_subset(subset)
    if kind == "pct":
        n = max(1, round(len(packs) * pct / 100)) if packs else 0
        return random.sample(packs, n)
    return [p for p in packs if int(p[:8], 16) % m == k - 1]


class Checker:
    def __init__(self, repo: Repository, progress: Progress | None = None, workers: int = 2) -> None:
        self.repo = repo
        self.progress = progress or NullProgress()
        self.workers = workers
        self.result = CheckResult()
        self._missing: set[bytes] = set()  # packs the index names that storage does not have
        self._trees = TreeReader(repo, {})  # (run gives it the packs' sizes)

    def run(
        self,
        *,
        read_data: bool = False,
        subset: str | None = None,
        packs: list[str] | None = None,
    ) -> CheckResult:
        """Check; with ``read_data`` also read the packs: ``packs`` when given (a selection made earlier,
        e.g. to thaw them first), else ``subset`` of them (:func:`select_packs`). Runs with the cyclic
        garbage collector paused (:func:`~safehold.engine.memtune.gc_paused`): pack headers, index and
        tree columns are many acyclic objects."""
        with gc_paused():
            return self._run(read_data, subset, packs)

    def _run(self, read_data: bool, subset: str | None, packs: list[str] | None) -> CheckResult:
        r = self.result
        repo = self.repo
        repo.load_index(errors=r.errors)
        stored = {fi.name: fi.size for fi in repo.backend.list(FileType.DATA)}
        self._trees = TreeReader(repo, stored)
        if not read_data:
            selected = []
        elif packs is not None:
            selected = [p for p in packs if p in stored]
        else:
            selected = select_packs(sorted(stored), subset)
        # Reading the data (the long part) starts now and overlaps the structure checks below.
        reader = _DataReader(self, [(p, stored[p]) for p in selected]) if read_data else None
        try:
            indexed = repo.index.pack_ids()
            self._missing = {p for p in indexed if p.hex() not in stored}
            r.packs = len(stored)
            self.progress.start("check packs", total_files=len(indexed))
            for pid, entries in repo.index.iter_pack_columns():
                name = pid.hex()
                if name not in stored:
                    r.errors.append(f"pack {name[:16]} is named by the index but missing from storage")
                    continue
                self._check_header(name, stored[name], entries)
                self.progress.advance(files=1)
            self.progress.finish()
            structure_errors = len(r.errors)
            self._check_snapshots()
            unindexed = sorted(set(stored) - {p.hex() for p in indexed})
            # Packs in no index are left by interrupted backups, and prune deletes them; but when the index
            # itself may be damaged they may hold what the snapshots need: then the advice is to read
            # them back into the index, never to prune (that would turn an index fault into data loss).
            suspect = bool(r.errors)
            for name in unindexed:
                r.notes.append(
                    f"pack {name[:16]} is not in any index: "
                    + (
                        "the index may be damaged; 'safehold repair index' reads it back (do not prune now)"
                        if suspect
                        else "left by an interrupted backup; prune deletes it once it is an hour old"
                    )
                )
            from safehold.engine.prune.leftovers import temporary_leftovers

            left = temporary_leftovers(repo.backend)
            if left:
                r.notes.append(
                    f"{len(left)} temporary file(s) left by interrupted writes more than a day ago "
                    f"({human_bytes(sum(fi.size for fi in left))}, e.g. {left[0].name}): prune removes them"
                )
            if reader is not None:
                reader.collect()
        finally:
            if reader is not None:
                reader.close()
        self._advise(structure_errors, bool(unindexed))
        return r

    def _advise(self, structure_errors: int, unindexed: bool) -> None:
        r = self.result
        if not r.errors:
            return
        index_fault = any(
            "index" in e or "missing from storage" in e or "header" in e for e in r.errors[:structure_errors]
        ) or any("is not in the index" in e for e in r.errors)
        if index_fault or unindexed:
            r.advice.append(
                "run 'safehold repair index': it rebuilds the index from the packs' own headers (do not run "
                "prune before: it would delete what the index no longer names)"
            )
        if r.affected:
            names = ", ".join(r.affected[:10]) + (
                f" and {len(r.affected) - 10} more" if len(r.affected) > 10 else ""
            )
            r.advice.append(
                f"snapshot(s) {names} reference missing or damaged data (and any other sharing their folders): "
                "then 'safehold repair snapshots' writes copies without the lost files and lists every one "
                "(--forget removes the originals)"
            )
        if any((e.startswith("snapshot ") and "damaged" in e) or "malformed" in e for e in r.errors):
            r.advice.append(
                "snapshot files that cannot be read: put them back from a copy, or remove them with "
                "'safehold repair snapshots --forget'"
            )
        if r.packs_read and any("cannot be read" in e or "pack " in e for e in r.errors[structure_errors:]):
            r.advice.append(
                "damaged packs: 'safehold repair snapshots --read-data --forget' finds the files that used them "
                "and writes snapshots without them, then 'safehold prune --max-unused 0%' rewrites those packs "
                "without the damaged blobs"
            )

    def _check_header(self, name: str, size: int, entries: PackColumns) -> None:
        try:
            _env, header = self.repo.read_pack_header_wires(name, size)
        except ColdStorageError:
            self.result.cold.append(name)
            return
        except (IntegrityError, SafeholdError) as exc:
            self.result.errors.append(f"pack {name[:16]}: header unreadable: {exc}")
            return
        # compared as columns: as objects, one pack of ~84,000 small files cost ~50 MiB beside the index
        if not same_places(header, entries):
            self.result.errors.append(f"pack {name[:16]}: header and index disagree")

    def _check_snapshots(self) -> None:
        r = self.result
        seen: set[bytes] = set()
        snaps = list(self.repo.iter_snapshots(errors=r.errors))
        r.snapshots = len(snaps)
        self.progress.start("check snapshots", total_files=len(snaps))
        for snap in snaps:
            before = len(r.errors)
            self._check_snapshot(snap, seen)
            if len(r.errors) > before:
                r.affected.append(snap.short_id)
            self.progress.advance(files=1)
        self.progress.finish()

    def _check_snapshot(self, snap: Snapshot, seen: set[bytes]) -> None:
        r = self.result
        try:
            root = bytes.fromhex(snap.tree)
        except ValueError:
            r.errors.append(f"snapshot {snap.short_id}: malformed tree id")
            return
        stack = [(root, f"snapshot {snap.short_id}")]
        # Remote storage: fetch the snapshot's trees pack by pack first (one request per pack, not
        # per folder). Local reads are cheap, and holding every tree of a snapshot costs memory.
        remote = not self.repo.backend.properties.local
        cache = self._prefetch(root) if remote and root not in seen else {}
        index = self.repo.index
        missing = self._missing
        while stack:
            tree_id, where = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            r.trees += 1
            loc = index.lookup(tree_id)
            if loc is None or loc.type != TREE:
                r.errors.append(f"{where}: tree {tree_id.hex()[:16]} is not in the index")
                continue
            try:
                raw = cache.get(tree_id)
                if raw is None:
                    raw = self._trees.load(tree_id, loc)
            except SafeholdError as exc:
                r.errors.append(f"{where}: tree {tree_id.hex()[:16]}: {exc}")
                continue
            try:
                names, types, contents, subtrees = tree_refs(raw, tree_id)  # and a name that breaks the rule
            except SafeholdError as exc:
                r.errors.append(f"{where}: {exc}")
                continue
            files = [k for k, t in enumerate(types) if t == FILE]
            ids = [b for k in files for b in contents[k]]
            locs = index.lookup_many(ids)
            if None in locs or any(bl.type != DATA or bl.pack_id in missing for bl in locs):  # type: ignore[union-attr]
                self._report_blobs(where, [(names[k], contents[k]) for k in files], locs)
            for k, t in enumerate(types):
                if t == DIR:
                    sub = subtrees[k]
                    shown = names[k].decode("utf-8", "surrogateescape")
                    if sub is None:
                        r.errors.append(f"{where}/{shown}: folder without a tree")
                    else:
                        stack.append((sub, f"{where}/{shown}"))

    def _report_blobs(
        self, where: str, files: list[tuple[bytes, list[bytes]]], locs: list[BlobLocation | None]
    ) -> None:
        """The errors about the content blobs of a tree's files (``locs``: their index entries, in order)."""
        it = iter(locs)
        for name, content in files:
            shown = name.decode("utf-8", "surrogateescape")
            for b in content:
                bl = next(it)
                if bl is None or bl.type != DATA:
                    self.result.errors.append(
                        f"{where}/{shown}: data blob {b.hex()[:16]} is not in the index"
                    )
                elif bl.pack_id in self._missing:
                    self.result.errors.append(
                        f"{where}/{shown}: data blob {b.hex()[:16]} is in pack "
                        f"{bl.pack_id.hex()[:16]}, which is missing"
                    )

    def _prefetch(self, root: bytes) -> dict[bytes, bytes]:
        """All trees of a snapshot, read pack by pack; on any problem {} (the per-tree walk then loads and
        reports each tree on its own, so every damaged tree is named)."""
        from safehold.engine.format.treewalk import prefetch_trees

        try:
            return prefetch_trees(self.repo, root, self.workers)
        except SafeholdError:
            return {}

    def _read_pack(
        self, name: str, size: int, helpers: queue.SimpleQueue[VerifierProcess]
    ) -> tuple[list[str], int, int]:
        h = Handle(FileType.DATA, name)
        backend = self.repo.backend
        vp = None if helpers.empty() else helpers.get()
        try:
            try:
                if backend.properties.local:
                    tail = read_tail(lambda off, n: backend.load(h, off, n), size)
                    parts: Iterator[bytes] = (
                        backend.load(h, off, min(READ_PART, size - off)) for off in range(0, size, READ_PART)
                    )
                else:
                    data = backend.load(h)
                    tail = read_tail(lambda off, n: data[off : off + n], len(data))
                    parts = iter([data])
                    del data
                if vp is None:
                    proof = PackProof(
                        self.repo.sessions, self.repo.keys.blob_id, self.repo.decompressor(), name, size, tail
                    )
                    for part in parts:
                        proof.feed(part)
                        del part  # not alive while the next part is read
                    errs, n = proof.finish()
                else:
                    vp.start(name, size, tail)
                    for part in parts:
                        vp.feed(part)
                        del part
                    errs, n = vp.finish()
            except ColdStorageError:
                if name not in self.result.cold:
                    self.result.cold.append(name)
                return [], 0, 0
            except SafeholdError as exc:
                if isinstance(exc, HelperError):
                    raise
                return [f"pack {name[:16]}: cannot be read: {exc}"], 0, 0
        finally:
            if vp is not None:
                helpers.put(vp)
        return errs, n, size


class _DataReader:
    """Reads and proves packs in the background: ``checker.workers`` at a time. When there are enough
    packs to pay for starting them, ``workers - 1`` helper processes take packs from the pool threads and
    one thread at a time proves its pack in this process: decrypting, decompressing and hashing large
    buffers release the interpreter lock, so that uses a core as well as one more helper did, without its
    memory (measured: same time, peak 98 -> 86 MiB on the benchmark). :meth:`collect` reports the
    results in pack order, with progress, once the caller is done with the structure checks."""

    def __init__(self, checker: Checker, packs: list[tuple[str, int]]) -> None:
        self._checker = checker
        self._packs = packs
        self._helpers: queue.SimpleQueue[VerifierProcess] = queue.SimpleQueue()
        self._started: list[VerifierProcess] = []
        keys = checker.repo.keys
        try:
            if len(packs) >= HELPERS_FROM:
                for _ in range(checker.workers - 1):
                    vp = VerifierProcess(keys.data, keys.blob_id)
                    self._started.append(vp)
                    self._helpers.put(vp)
            self._pool = ThreadPoolExecutor(max_workers=checker.workers, thread_name_prefix="safehold-check")
        except BaseException:
            self._close_helpers()
            raise
        self._futures = [
            self._pool.submit(checker._read_pack, name, size, self._helpers) for name, size in packs
        ]

    def collect(self) -> None:
        c, r = self._checker, self._checker.result
        c.progress.start("read data", total_files=len(self._packs))
        try:
            for fut in self._futures:
                errs, nblobs, nbytes = fut.result()
                r.errors += errs
                r.packs_read += 1 if nbytes or errs else 0  # a cold pack was not read
                r.blobs_read += nblobs
                r.bytes_read += nbytes
                c.progress.advance(files=1, nbytes=nbytes)
        finally:
            self.close()
        c.progress.finish()

    def close(self) -> None:
        """Stop reading (what has not started is cancelled) and end the helpers. Idempotent."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._close_helpers()

    def _close_helpers(self) -> None:
        for vp in self._started:
            vp.close()
        self._started = []
