"""Restoring a snapshot's tree to disk.

The restorer first plans (walks the snapshot's trees, applies include/exclude patterns and the overwrite
policy), then reads each needed pack once and writes every blob it holds into every file that needs it,
several packs in parallel (2 readers on local storage, ``backend.properties.connections`` on remote
storage, where each read is a round trip). On remote storage the snapshot's trees are fetched first,
breadth-first with the same parallelism, instead of one round trip per folder. A file is assembled under a temporary name next to its final path, its
metadata applied, and only then renamed into place: a file that could not be restored completely is
never left at its final path. Every blob is decrypted, decompressed and checked against its id before
a single byte of it is written. A second run after an interruption skips files already complete (same
type, size and mtime) under the default ``if-changed`` policy.

Order: folders, then file contents, then hard links, symlinks and special files, then folder metadata
from the deepest folder up (writing into a folder changes its mtime).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pathspec

from safehold.backends.base import FileType, Handle
from safehold.engine.memtune import release_memory, tune_malloc
from safehold.engine.pack import DATA, TREE, PackedBlob
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.repository import Repository
from safehold.engine.tree import DIR, FILE, SYMLINK, Node, decode_tree
from safehold.errors import IntegrityError, NotFound, SafeholdError, UsageError
from safehold.sources.fs.meta import apply_metadata, create_special, write_sparse_aware

OVERWRITE_POLICIES = ("never", "if-changed", "always")
TMP_SUFFIX = b".safehold-partial"
_GAP = 256 * 1024
#: Largest read from a local pack: bounds the memory each reader holds (remote reads stay whole-pack,
#: where every request is a round trip).
_LOCAL_READ = 2 * 1024 * 1024
#: Files up to this size that arrive in one piece are written plainly (no ftruncate, no hole search).
_PLAIN_WRITE = 64 * 1024
#: Jobs share this many locks (a lock per file would cost more memory than the rest of its plan).
_LOCK_STRIPES = 64
#: Stored tree packs kept while the trees of a snapshot are fetched from remote storage.
_TREE_PACK_CACHE = 256 * 1024 * 1024


@dataclass
class RestoreStats:
    files: int = 0
    files_skipped: int = 0
    dirs: int = 0
    bytes_written: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(slots=True)
class _Job:
    """One regular file to restore (one per file: slots keep a plan of millions of files small)."""

    final: bytes
    node: Node
    remaining: int
    created: bool = False
    failed: bool = False

    @property
    def tmp(self) -> bytes:
        d, n = os.path.split(self.final)
        return os.path.join(d, b"." + n[:200] + TMP_SUFFIX)


#: One blob's place in one file: (offset in pack, stored length, raw length, compressed, blob id, job,
#: offset in the file).
_Piece = tuple[int, int, int, bool, bytes, _Job, int]


def _piece_offset(p: _Piece) -> int:
    return p[0]


def load_tree(repo: Repository, tree_id: bytes) -> list[Node]:
    return decode_tree(repo.load_blob(TREE, tree_id))


def find_node(repo: Repository, root_tree: bytes, subpath: str) -> Node:
    """The node at ``subpath`` ('/'-separated, relative to the snapshot root)."""
    node = Node(name=b"", type=DIR, subtree=root_tree)
    for part in [os.fsencode(p) for p in subpath.strip("/").split("/") if p]:
        if node.type != DIR or node.subtree is None:
            raise NotFound(f"{subpath} is not a folder in the snapshot")
        match = [n for n in load_tree(repo, node.subtree) if n.name == part]
        if not match:
            raise NotFound(f"{subpath} does not exist in the snapshot")
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
    nodes = decode_tree(raw) if raw is not None else load_tree(repo, tree_id)
    for n in nodes:
        path = prefix + b"/" + n.name if prefix else n.name
        yield path, n
        if n.type == DIR and n.subtree is not None:
            yield from walk(repo, n.subtree, path, cache=cache)


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
                for n in decode_tree(raw):
                    if n.type == DIR and n.subtree is not None and n.subtree not in out:
                        nxt[n.subtree] = None
            level = [t for t in nxt if t not in out]
    return out


class PathFilter:
    def __init__(self, includes: list[str], excludes: list[str], base: bytes) -> None:
        self.inc = pathspec.GitIgnoreSpec.from_lines(includes) if includes else None
        self.exc = pathspec.GitIgnoreSpec.from_lines(excludes) if excludes else None
        self.base = base

    def wanted(self, rel: bytes, is_dir: bool) -> bool | None:
        """True: restore; False: skip (and below); None: undecided dir (restore only if children are)."""
        p = os.fsdecode(os.path.join(self.base, rel) if self.base else rel) + ("/" if is_dir else "")
        if self.exc is not None and self.exc.match_file(p):
            return False
        if self.inc is None or self.inc.match_file(p):
            return True
        return None


class Restorer:
    def __init__(
        self,
        repo: Repository,
        *,
        overwrite: str = "if-changed",
        progress: Progress | None = None,
        restore_owner: bool | None = None,
        workers: int | None = None,
    ) -> None:
        """``workers`` is how many packs are read at once (default: 2 on local storage, else the
        backend's ``connections``, at least 2)."""
        if overwrite not in OVERWRITE_POLICIES:
            raise UsageError(f"--overwrite takes one of {', '.join(OVERWRITE_POLICIES)}")
        tune_malloc()
        self.repo = repo
        self.overwrite = overwrite
        self.progress = progress or NullProgress()
        self.restore_owner = os.geteuid() == 0 if restore_owner is None else restore_owner
        props = repo.backend.properties
        self.workers = workers or (2 if props.local else max(2, props.connections))
        self._max_read = _LOCAL_READ if props.local else None
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._ready: set[bytes] = set()  # folders known to exist
        self._fresh: set[bytes] = set()  # folders this restore created (they held nothing before)
        self.stats = RestoreStats()

    def _lock(self, job: _Job) -> threading.Lock:
        return self._locks[id(job) // 64 % _LOCK_STRIPES]

    # ---- planning --------------------------------------------------------------------------------
    def restore(
        self,
        start: Node,
        target: bytes,
        *,
        includes: list[str] | None = None,
        excludes: list[str] | None = None,
        base: bytes = b"",
    ) -> RestoreStats:
        """Restore the children of folder node ``start`` below ``target``."""
        self.repo.load_index()
        if start.type != DIR or start.subtree is None:
            return self._restore_single(start, target)
        flt = PathFilter(includes or [], excludes or [], base)
        os.makedirs(target, exist_ok=True)
        dirs: list[tuple[bytes, Node]] = []
        later: list[tuple[bytes, Node]] = []
        jobs: list[_Job] = []
        links: dict[tuple[int, int], bytes] = {}
        skipped_dirs: list[bytes] = []
        trees = (
            None
            if self.repo.backend.properties.local
            else prefetch_trees(self.repo, start.subtree, self.workers)
        )
        for rel, node in walk(self.repo, start.subtree, cache=trees):
            if any(rel.startswith(s + b"/") for s in skipped_dirs[-64:]):
                continue
            want = flt.wanted(rel, node.type == DIR)
            if want is False:
                if node.type == DIR:
                    skipped_dirs.append(rel)
                continue
            final = os.path.join(target, rel)
            if node.type == DIR:
                if want is None:
                    later.append((final, node))
                    continue
                self._mkdir(final)
                dirs.append((final, node))
                continue
            if want is None:
                continue
            self._ensure_parents(final, target, later, dirs)
            if node.type == FILE:
                key = (node.device, node.inode)
                if node.links > 1 and key in links:
                    later.append((final, node))
                    continue
                if node.links > 1:
                    links[key] = final
                if self._skip_existing(final, node):
                    self.stats.files_skipped += 1
                    continue
                jobs.append(_Job(final, node, len(node.content)))
            else:
                later.append((final, node))
        self._restore_contents(jobs)
        self._finish_others(later, links)
        for final, node in sorted(dirs, key=lambda x: x[0].count(b"/"), reverse=True):
            self.stats.warnings += apply_metadata(final, node, restore_owner=self.restore_owner)
        return self.stats

    def _ensure_parents(
        self, final: bytes, target: bytes, pending: list[tuple[bytes, Node]], dirs: list[tuple[bytes, Node]]
    ) -> None:
        parent = os.path.dirname(final)
        if parent in self._ready or os.path.isdir(parent):
            self._ready.add(parent)
            return
        self._mkdir(parent)
        for p, n in pending:
            if (
                n.type == DIR
                and (parent == p or parent.startswith(p + b"/"))
                and all(p != d for d, _ in dirs)
            ):
                dirs.append((p, n))

    def _mkdir(self, path: bytes) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):
                if self.overwrite != "always":
                    self.stats.errors.append(f"{os.fsdecode(path)}: exists and is not a folder")
                    return
                os.unlink(path)
                os.mkdir(path, 0o700)
        except FileNotFoundError:
            os.makedirs(path, mode=0o700, exist_ok=True)
        else:
            self._fresh.add(path)  # created just now: nothing inside it can be in the way
        self._ready.add(path)
        self.stats.dirs += 1

    def _skip_existing(self, final: bytes, node: Node) -> bool:
        if os.path.dirname(final) in self._fresh:
            return False
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            return False
        if self.overwrite == "never":
            return True
        if stat.S_ISDIR(st.st_mode):
            self.stats.errors.append(f"{os.fsdecode(final)}: a folder is in the way of a file")
            return True
        return (
            self.overwrite == "if-changed"
            and stat.S_ISREG(st.st_mode)
            and st.st_size == node.size
            and st.st_mtime_ns == node.mtime_ns
        )

    def _restore_single(self, node: Node, target: bytes) -> RestoreStats:
        os.makedirs(target, exist_ok=True)
        final = os.path.join(target, node.name)
        if node.type == FILE:
            if not self._skip_existing(final, node):
                self._restore_contents([_Job(final, node, len(node.content))])
        else:
            self._finish_others([(final, node)], {})
        return self.stats

    # ---- contents --------------------------------------------------------------------------------
    def _restore_contents(self, jobs: list[_Job]) -> None:
        # Per pack, one flat tuple per (blob, place in a file): a restore plan holds one per chunk of
        # every file, so no objects beyond the tuple (see _Piece).
        by_pack: dict[bytes, list[_Piece]] = {}
        envelopes: dict[bytes, bytes] = {}
        locs = iter(self.repo.index.lookup_many([b for job in jobs for b in job.node.content]))
        for job in jobs:
            if not job.node.content:
                self._create(job)
                self._complete(job)
                continue
            off = 0
            found = [next(locs) for _ in job.node.content]
            for blob_id, loc in zip(job.node.content, found, strict=True):
                if loc is None or loc.type != DATA:
                    job.failed = True
                    self.stats.errors.append(
                        f"{os.fsdecode(job.final)}: blob {blob_id.hex()[:16]} is missing from the repository"
                    )
                    break
                envelopes[loc.pack_id] = loc.envelope
                by_pack.setdefault(loc.pack_id, []).append(
                    (loc.offset, loc.length, loc.raw_length, loc.compressed, blob_id, job, off)
                )
                off += loc.raw_length
        release_memory()  # what planning freed (decoded trees), before the readers allocate
        total = sum(j.node.size for j in jobs)
        self.progress.start("restore", total_files=len(jobs), total_bytes=total)
        work = [(pid, envelopes[pid], pieces) for pid, pieces in by_pack.items()]
        del by_pack
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="safehold-restore") as pool:
            list(pool.map(self._restore_pack, work))
        for job in jobs:
            if job.failed and job.created:
                try:
                    os.unlink(job.tmp)
                except OSError:
                    pass
        self.progress.finish()

    def _restore_pack(self, item: tuple[bytes, bytes, list[_Piece]]) -> None:
        pack_id, envelope, pieces = item
        h = Handle(FileType.DATA, pack_id.hex())
        pieces.sort(key=_piece_offset)
        # Read runs of nearby blobs in one request each (at most _max_read bytes on local storage).
        groups: list[list[_Piece]] = []
        for p in pieces:
            if groups:
                g = groups[-1]
                gap = p[0] - (g[-1][0] + g[-1][1])
                if gap <= _GAP and (self._max_read is None or p[0] + p[1] - g[0][0] <= self._max_read):
                    g.append(p)
                    continue
            groups.append([p])
        for group in groups:
            first, last = group[0], group[-1]
            try:
                data = self.repo.backend.load(h, first[0], last[0] + last[1] - first[0])
            except SafeholdError as exc:
                self._fail_all(group, f"pack {pack_id.hex()[:16]} unreadable: {exc}")
                continue
            mv = memoryview(data)
            i = 0
            while i < len(group):
                offset, length, raw_length, compressed, blob_id, _job, _off = group[i]
                same = i + 1
                while same < len(group) and group[same][0] == offset:
                    same += 1  # one blob, several places (deduplicated content)
                start = offset - first[0]
                loc = PackedBlob(DATA, blob_id, offset, length, raw_length, compressed)
                try:
                    plain = self.repo.decode_blob(blob_id, loc, envelope, mv[start : start + length])
                except IntegrityError as exc:
                    self._fail_all(group[i:same], str(exc))
                else:
                    for p in group[i:same]:
                        self._write(p[5], p[6], plain)
                i = same

    def _fail_all(self, pieces: list[_Piece], msg: str) -> None:
        for p in pieces:
            job = p[5]
            with self._lock(job):
                if not job.failed:
                    job.failed = True
                    self.stats.errors.append(f"{os.fsdecode(job.final)}: not restored: {msg}")

    def _create(self, job: _Job) -> None:
        fd = os.open(job.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, job.node.size)
        finally:
            os.close(fd)
        job.created = True

    def _write(self, job: _Job, offset: int, data: bytes) -> None:
        with self._lock(job):
            if job.failed:
                return
            try:
                # the first write creates the file (pre-sized, so skipped zero blocks read as zeros)
                flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                if not job.created:
                    flags |= os.O_CREAT | os.O_TRUNC
                fd = os.open(job.tmp, flags, 0o600)
                try:
                    whole = not job.created and offset == 0 and len(data) == job.node.size
                    if whole and len(data) <= _PLAIN_WRITE:
                        _write_all(fd, data)  # a small file in one piece: holes are not worth it
                        job.created = True
                    else:
                        if not job.created:
                            os.ftruncate(fd, job.node.size)
                            job.created = True
                        write_sparse_aware(fd, offset, data)
                    job.remaining -= 1
                    if job.remaining == 0:  # the last piece: metadata through this descriptor
                        self.stats.warnings += apply_metadata(
                            job.tmp, job.node, restore_owner=self.restore_owner, fd=fd
                        )
                finally:
                    os.close(fd)
            except OSError as exc:
                job.failed = True
                self.stats.errors.append(f"{os.fsdecode(job.final)}: write failed: {exc.strerror}")
                return
            self.stats.bytes_written += len(data)
            self.progress.advance(nbytes=len(data))
            if job.remaining == 0:
                self._complete(job, metadata_done=True)

    def _complete(self, job: _Job, *, metadata_done: bool = False) -> None:
        if not metadata_done:
            self.stats.warnings += apply_metadata(job.tmp, job.node, restore_owner=self.restore_owner)
        try:
            os.replace(job.tmp, job.final)
        except IsADirectoryError:
            job.failed = True
            self.stats.errors.append(f"{os.fsdecode(job.final)}: a folder is in the way of a file")
            return
        self.stats.files += 1
        self.progress.advance(files=1)

    # ---- links, symlinks, specials ------------------------------------------------------------------
    def _already_there(self, final: bytes, node: Node, links: dict[tuple[int, int], bytes]) -> bool:
        """With ``if-changed``: a hard link or symlink that is already exactly what the node says."""
        if self.overwrite != "if-changed":
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

    def _finish_others(self, items: list[tuple[bytes, Node]], links: dict[tuple[int, int], bytes]) -> None:
        for final, node in items:
            if node.type == DIR:
                continue
            try:
                if os.path.lexists(final):
                    if self.overwrite == "never" or self._already_there(final, node, links):
                        self.stats.files_skipped += 1
                        continue
                    if os.path.isdir(final) and not os.path.islink(final):
                        self.stats.errors.append(f"{os.fsdecode(final)}: a folder is in the way")
                        continue
                    os.unlink(final)
                if node.type == FILE:
                    src = links.get((node.device, node.inode))
                    if src is None or not os.path.exists(src):
                        self.stats.errors.append(f"{os.fsdecode(final)}: hard link target was not restored")
                        continue
                    os.link(src, final)
                    self.stats.files += 1
                    continue
                if node.type == SYMLINK:
                    os.symlink(node.linktarget or b"", final)
                elif not create_special(final, node):
                    continue
                self.stats.warnings += apply_metadata(final, node, restore_owner=self.restore_owner)
            except (OSError, SafeholdError) as exc:
                self.stats.errors.append(f"{os.fsdecode(final)}: {exc}")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
