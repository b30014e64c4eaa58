"""Turning file trees, byte strings and streams into tree and data blobs.

The :class:`Archiver` walks one directory at a time (asking a
:class:`~safehold.engine.fs.select.Selector` which entries belong), reads files in this one thread,
cuts them with FastCDC (seeded from the repository config), hashes each chunk with keyed BLAKE3 and
hands only new chunks to the :class:`~safehold.engine.backup.writer.BlobWriter`'s workers. Reading stays in
one thread on purpose: small-file I/O from several Python threads is slower than from one.

A :class:`VirtualDir` lets callers compose a snapshot root from several sources: absolute backup paths
(intermediate folders take their metadata from the real folders), component folders, byte strings and
streams (database dumps, API exports).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import blake3
import msgpack

from safehold.engine.backup.chunker import Chunker
from safehold.engine.backup.filescache import DirRows, FilesCache
from safehold.engine.backup.writer import BlobWriter
from safehold.engine.format.pack import DATA, TREE
from safehold.engine.format.repository import Repository
from safehold.engine.format.tree import DIR, FILE, Node, encode_tree
from safehold.engine.fs.meta import group_name, node_from_stat, user_name
from safehold.engine.fs.select import Selector
from safehold.engine.progress import NullProgress, Progress

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)
#: Blobs of small files are hashed at once and handed to the writer in batches of this many (or bytes):
#: one vectorised index search per batch instead of one search per blob.
_HOLD_BLOBS = 512
_HOLD_BYTES = 4 * 1024 * 1024


@dataclass
class ArchiveStats:
    files: int = 0
    dirs: int = 0
    other: int = 0
    files_read: int = 0
    files_cached: int = 0
    bytes_total: int = 0
    bytes_read: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class StreamResult:
    node: Node
    size: int
    sha256: str


@dataclass
class VirtualDir:
    """A folder of the snapshot being built that is not (only) a real folder on disk."""

    meta: Node | None = None
    children: dict[bytes, VirtualDir | Node] = field(default_factory=dict)

    def subdir(self, name: bytes, meta: Node | None = None) -> VirtualDir:
        cur = self.children.get(name)
        if isinstance(cur, VirtualDir):
            if meta is not None and cur.meta is None:
                cur.meta = meta
            return cur
        if cur is not None:
            raise ValueError(f"{name!r} is both a file and a folder in the snapshot")
        d = VirtualDir(meta)
        self.children[name] = d
        return d

    def add(self, node: Node) -> None:
        if node.name in self.children:
            raise ValueError(f"{node.display_name!r} appears twice in the snapshot")
        self.children[node.name] = node

    def walk_to(
        self, parts: list[bytes], meta_of: Callable[[int], Node | None] = lambda _i: None
    ) -> VirtualDir:
        d = self
        for i, p in enumerate(parts):
            d = d.subdir(p, meta_of(i))
        return d


class Archiver:
    """Stores file trees and streams as blobs. One instance per backup; used from one thread."""

    def __init__(
        self,
        repo: Repository,
        writer: BlobWriter,
        *,
        cache: FilesCache | None = None,
        progress: Progress | None = None,
    ) -> None:
        cfg = repo.config
        self.repo = repo
        self.writer = writer
        self.cache = cache
        self.progress = progress or NullProgress()
        self.stats = ArchiveStats()
        self.errors: list[str] = []
        self._keys = repo.keys
        self._chunker = Chunker(cfg.avg_size, cfg.min_size, cfg.max_size, cfg.chunker_seed)
        self._hardlinks: dict[tuple[int, int], list[bytes]] = {}
        self._held: list[tuple[bytes, memoryview]] = []
        self._held_bytes = 0
        self._blob_key = self._keys.blob_id
        if cache is not None:
            repo.load_index()
            cache.bind_index(repo.index_files)

    # ---- blobs and trees -------------------------------------------------------------------------
    def _store(self, blob_type: int, data: bytes | memoryview, *, fast: bool = False) -> bytes:
        blob_id = self._keys.blob_id_of(data)
        if self.writer.reserve(blob_id):
            self.writer.submit(blob_type, blob_id, data, fast=fast)
        return blob_id

    def _hold(self, data: memoryview) -> bytes:
        """The id of a data blob that is stored by the next :meth:`_release` (``data`` must not change)."""
        blob_id = blake3.blake3(data, key=self._blob_key, max_threads=1).digest()
        self._held.append((blob_id, data))
        self._held_bytes += len(data)
        if len(self._held) >= _HOLD_BLOBS or self._held_bytes >= _HOLD_BYTES:
            self._release()
        return blob_id

    def _release(self) -> None:
        """Store the held blobs that the repository and this backup do not have yet."""
        held, self._held, self._held_bytes = self._held, [], 0
        if not held:
            return
        submit = self.writer.submit
        for (blob_id, data), new in zip(held, self.writer.reserve_many([h[0] for h in held]), strict=True):
            if new:
                submit(DATA, blob_id, data)

    def save_tree(self, nodes: list[Node]) -> bytes:
        return self._store(TREE, encode_tree(nodes))

    def build(self, vdir: VirtualDir, name: bytes = b"") -> Node:
        """Save a virtual folder (recursively) and return its node."""
        nodes = [self.build(c, n) if isinstance(c, VirtualDir) else c for n, c in vdir.children.items()]
        meta = vdir.meta
        node = Node(name=name, type=DIR, mode=0o755, mtime_ns=time.time_ns()) if meta is None else _copy(meta)
        node.name = name
        node.subtree = self.save_tree(nodes)
        return node

    # ---- content from memory and streams ---------------------------------------------------------
    def bytes_node(self, name: bytes, data: bytes, mode: int = 0o600) -> Node:
        content = [self._store(DATA, chunk) for chunk in self._chunker.cut(data)]
        self.progress.advance(files=1, nbytes=len(data))
        return _synthetic(name, len(data), content, mode)

    def stream_node(self, name: bytes, stream: IO[bytes], mode: int = 0o600) -> StreamResult:
        """Chunk everything read from ``stream`` until EOF into one file node (bounded memory)."""
        digest = hashlib.sha256()
        content: list[bytes] = []
        size = 0
        for chunk in self._chunker.stream(_readinto_of(stream)):  # views: _store must not keep them
            digest.update(chunk)
            content.append(self._store(DATA, chunk, fast=True))
            size += len(chunk)
            self.progress.advance(nbytes=len(chunk))
        self.progress.advance(files=1)
        return StreamResult(_synthetic(name, size, content, mode), size, digest.hexdigest())

    # ---- file trees ------------------------------------------------------------------------------
    def archive_path(self, path: bytes, selector: Selector, name: bytes | None = None) -> Node | None:
        """Archive a file or folder at ``path`` (recursively). None when it cannot be read."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            self._error(path, f"cannot read: {exc.strerror}")
            return None
        node = self._entry(path, os.path.basename(path) if name is None else name, st, selector, None)
        self._release()
        return node

    def _entry(
        self,
        path: bytes,
        name: bytes,
        st: os.stat_result,
        selector: Selector,
        cached: DirRows | None,
    ) -> Node | None:
        node = node_from_stat(name, path, st)
        if stat.S_ISDIR(st.st_mode):
            return self._dir(path, node, st, selector)
        if stat.S_ISREG(st.st_mode):
            self.stats.files += 1
            self.stats.bytes_total += st.st_size
            content = self._file_content(path, st, cached.get(name) if cached else None)
            if content is None:
                return None
            node.content = content
            self.progress.advance(files=1, nbytes=st.st_size)
            return node
        self.stats.other += 1
        return node

    def _dir(self, path: bytes, node: Node, st: os.stat_result, selector: Selector) -> Node:
        self.stats.dirs += 1
        n_errors = len(selector.errors)
        entries = selector.scan(path, st)
        scan_ok = len(selector.errors) == n_errors
        for p, msg in selector.errors[n_errors:]:
            self._error(p, msg)
        base = path if path.endswith(b"/") else path + b"/"
        # Subfolders first: their tree ids are part of this folder's digest.
        subdirs: dict[bytes, Node] = {}
        for name, est in entries:
            if stat.S_ISDIR(est.st_mode):
                child = self._entry(base + name, name, est, selector, None)
                if child is not None:
                    subdirs[name] = child
        digest = None
        if self.cache is not None and scan_ok:
            digest = folder_digest(entries, subdirs)
            tree = self.cache.lookup_tree(path, digest)
            if tree is not None:
                self._count_unchanged(entries)
                node.subtree = tree
                return node
        n_own = len(self.errors)
        cached = self._usable_cache(path)
        nodes: list[Node] = []
        for name, est in entries:
            child = (
                subdirs.get(name)
                if stat.S_ISDIR(est.st_mode)
                else self._entry(base + name, name, est, selector, cached)
            )
            if child is not None:
                nodes.append(child)
        self.writer.raise_if_failed()
        node.subtree = self.save_tree(nodes)
        if self.cache is not None:
            if digest is not None and len(self.errors) == n_own and not self._racy(entries):
                self.cache.record_tree(path, digest, node.subtree)
            if cached:
                self.cache.purge_dir(path)
        return node

    def _racy(self, entries: list[tuple[bytes, os.stat_result]]) -> bool:
        assert self.cache is not None
        newest = max((max(st.st_mtime_ns, st.st_ctime_ns) for _, st in entries), default=0)
        return self.cache.racy(newest)

    def _count_unchanged(self, entries: list[tuple[bytes, os.stat_result]]) -> None:
        """Account for the entries of a folder stored as the same tree as before (subfolders were
        counted when they were visited)."""
        files = nbytes = 0
        for _name, st in entries:
            if stat.S_ISREG(st.st_mode):
                files += 1
                nbytes += st.st_size
            elif not stat.S_ISDIR(st.st_mode):
                self.stats.other += 1
        self.stats.files += files
        self.stats.files_cached += files
        self.stats.bytes_total += nbytes
        self.progress.advance(files=files, nbytes=nbytes)

    def _usable_cache(self, path: bytes) -> DirRows | None:
        """The files cache's entries for folder ``path`` whose blobs are all in the index (rows the cache
        does not trust are checked with one lookup for the whole folder)."""
        if self.cache is None:
            return None
        cached = self.cache.lookup_dir(path)
        ids = [b for entry in cached.values() if not entry[5] for b in entry[4]]
        if not ids:
            return cached
        missing = {b for b, loc in zip(ids, self.repo.index.lookup_many(ids), strict=True) if loc is None}
        if missing:
            cached = {n: e for n, e in cached.items() if not missing.intersection(e[4])}
        return cached

    def _file_content(
        self, path: bytes, st: os.stat_result, cached: tuple[int, int, int, int, list[bytes], bool] | None
    ) -> list[bytes] | None:
        if st.st_nlink > 1:
            known = self._hardlinks.get((st.st_dev, st.st_ino))
            if known is not None:
                return known
        if cached is not None and cached[:4] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
            self.stats.files_cached += 1
            content = cached[4]
        else:
            read = self._read_file(path, st)
            if read is None:
                return None
            content = read
        if self.cache is not None:
            i = path.rfind(b"/")  # os.path.split without its generality (path is absolute and clean)
            d = path[:i] if i > 0 else b"/"
            self.cache.record(
                d, path[i + 1 :], st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, content
            )
        if st.st_nlink > 1:
            self._hardlinks[(st.st_dev, st.st_ino)] = content
        return content

    def _read_file(self, path: bytes, st: os.stat_result) -> list[bytes] | None:
        try:
            try:
                fd = os.open(path, _READ_FLAGS | _NOATIME)
            except PermissionError:
                fd = os.open(path, _READ_FLAGS)
        except OSError as exc:
            self._error(path, f"cannot read: {exc.strerror}")
            return None
        content: list[bytes] = []
        nbytes = 0
        try:
            try:
                if st.st_size < self._chunker.max_size:
                    # One read: a short read of a regular file means its end (one byte more shows growth).
                    data = os.read(fd, st.st_size + 1)
                    nbytes = len(data)
                    content = [self._hold(c) for c in self._chunker.cut(data)]
                else:
                    for chunk in self._chunker.stream(lambda view: os.readv(fd, [view])):
                        nbytes += len(chunk)
                        content.append(self._store(DATA, chunk))
                after = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._error(path, f"read failed: {exc.strerror}")
            return None
        self.stats.files_read += 1
        self.stats.bytes_read += nbytes
        if nbytes != after.st_size or after.st_mtime_ns != st.st_mtime_ns or after.st_size != st.st_size:
            self._error(path, "file changed while it was read; the stored copy may be inconsistent")
        return content

    def _error(self, path: bytes, message: str) -> None:
        text = f"{os.fsdecode(path)}: {message}"
        self.errors.append(text)
        self.progress.warn(text)


#: Bumped whenever what :func:`folder_digest` covers changes (old tree rows then simply do not match).
_DIGEST_VERSION = 1


def folder_digest(entries: list[tuple[bytes, os.stat_result]], subdirs: dict[bytes, Node]) -> bytes:
    """A digest of everything a folder's tree blob is made of, taken without building its nodes.

    Per selected entry: its name and every ``lstat`` field a node records (type and mode, owner, size,
    mtime, ctime, atime, inode, device, link count, device number) and, for a subfolder, its tree id;
    plus the owner and group names of the uids and gids seen. What a node holds beyond that is covered
    by the ctime: writing a file's content is the files cache's rule (size, mtime, ctime, inode); an
    xattr or ACL change, a chmod or chown moves the ctime; a symlink's target cannot change in place.
    """
    rows = [
        (name, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_atime_ns,
         st.st_ino, st.st_dev, st.st_nlink, st.st_rdev, sub.subtree if (sub := subdirs.get(name)) else None)
        for name, st in entries
    ]  # fmt: skip
    owners = sorted({(st.st_uid, st.st_gid) for _, st in entries})
    names = [(u, user_name(u), g, group_name(g)) for u, g in owners]
    return blake3.blake3(msgpack.packb([_DIGEST_VERSION, rows, names], use_bin_type=True)).digest()


def _readinto_of(stream: IO[bytes]) -> Callable[[memoryview], int | None]:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto  # type: ignore[no-any-return]

    def via_read(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return via_read


def _synthetic(name: bytes, size: int, content: list[bytes], mode: int) -> Node:
    now = time.time_ns()
    return Node(
        name=name,
        type=FILE,
        mode=mode,
        uid=os.getuid(),
        gid=os.getgid(),
        mtime_ns=now,
        ctime_ns=now,
        atime_ns=now,
        size=size,
        content=content,
    )


def _copy(node: Node) -> Node:
    return dataclasses.replace(node)
