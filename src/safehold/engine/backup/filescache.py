"""The local files cache: lets a backup skip reading files, and whole unchanged folders, again.

One SQLite file per repository (``$XDG_CACHE_HOME/safehold/<repo id>/files.sqlite``), two kinds of rows:

* ``files``: a file (folder + name) -> its size, mtime, ctime and inode and the blob ids of its content.
* ``trees``: a folder -> the digest of everything its tree blob is made of (see
  :func:`~safehold.engine.backup.archiver.folder_key`: the names, ``lstat`` fields and owner names of its selected
  entries and the tree ids of its subfolders) and the id of that tree blob. A folder whose digest is
  unchanged is stored as the same tree without building a node per file: a backup with nothing changed
  then costs one ``lstat`` per entry and one lookup per folder.

Each row carries a keyed BLAKE3 MAC over all its fields (key from the repository's ``cache`` subkey), so
a damaged or tampered row is ignored, never trusted. The MAC's input is injective: a tag naming the row
kind and :data:`FORMAT`, the length of every variable-length field and the fixed-width numbers come
first, then the fields (format 1 bound only the folder's length, so bytes could move between a file's
name and its blob ids). A cache of another format is emptied when opened, never read; a row whose
values have the wrong type or range is ignored. A row is only written, and only trusted, when the
timestamps it relies on are older than the start of the backup that records it: a file modified in the
same clock tick as the backup could change again without its timestamps moving.

Blobs a row names must still be in the repository. Blobs leave the index only when an index file is
removed (index files are immutable; prune and repair replace them), so the cache keeps the names of the
index files present when its last backup committed: while all of them are still there (``bind_index``),
rows of the backups since the last time that was not so are *trusted* and used without looking their
blobs up. Otherwise (or for rows of a backup that did not commit) every blob of a file row is looked up
and tree rows are not used; the rows rewritten by that backup are trusted again from then on.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import blake3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  dir BLOB NOT NULL, name BLOB NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL, inode INTEGER NOT NULL, ids BLOB NOT NULL, mac BLOB NOT NULL,
  gen INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees (
  dir BLOB NOT NULL PRIMARY KEY, digest BLOB NOT NULL, tree BLOB NOT NULL, mac BLOB NOT NULL,
  gen INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_files (name TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""
_KEEP_GENERATIONS = 10
#: Version of the rows and their MACs; a cache of any other version is emptied on open.
FORMAT = 2
_FILE_MAC = struct.Struct(">8sIIIQqqQ")  # tag, len(dir), len(name), len(ids), size, mtime, ctime, inode
_TREE_MAC = struct.Struct(">8sIII")  # tag, len(dir), len(digest), len(tree)
_FILE_TAG = b"shfile\x00\x02"
_TREE_TAG = b"shtree\x00\x02"
#: Expiring old rows scans the tables: done every this many generations.
_EXPIRE_EVERY = 4

#: name -> (size, mtime, ctime, inode, blob ids, trusted)
DirRows = dict[bytes, tuple[int, int, int, int, list[bytes], bool]]


def cache_root() -> Path:
    """``$SAFEHOLD_CACHE_DIR``, else ``$XDG_CACHE_HOME/safehold``, else ``~/.cache/safehold``."""
    if os.environ.get("SAFEHOLD_CACHE_DIR"):
        return Path(os.environ["SAFEHOLD_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "safehold"


class FilesCache:
    def __init__(self, path: Path, key: bytes, start_ns: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._upgrade()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._key = key
        self._start = start_ns
        meta = dict(self._db.execute("SELECT k, v FROM meta").fetchall())
        self._committed = meta.get("gen", 0)
        # Every backup gets a generation no other backup had, also when one before it did not commit.
        self._gen = max(self._committed, meta.get("allocated", 0)) + 1
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('allocated', ?)", (self._gen,))
        self._trusted_from = meta.get("trusted_from", 1)
        self._intact = False  # until bind_index says otherwise
        self._index_files: Iterable[str] = ()
        # A first backup asks for nothing: no query per folder.
        self._empty = self._db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None
        self._pending: list[tuple[bytes, bytes, int, int, int, int, bytes, bytes, int]] = []
        self._pending_trees: list[tuple[bytes, bytes, bytes, bytes, int]] = []
        self._touched_trees: list[tuple[int, bytes]] = []
        self._purge: list[tuple[bytes, int]] = []
        self._lock = threading.Lock()  # the connection: the walk's lookups and the inserting thread
        self._inserting: threading.Thread | None = None
        self.hits = 0

    def _upgrade(self) -> None:
        """Empty a cache of another format: its rows would not verify (or, worse, be misread)."""
        row = self._db.execute("SELECT v FROM meta WHERE k='format'").fetchone()
        if row is not None and row[0] == FORMAT:
            return
        self._db.execute("BEGIN")
        for table in ("files", "trees", "index_files", "meta"):
            self._db.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
        self._db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
        self._db.execute("COMMIT")

    @classmethod
    def for_repository(cls, repo_id: str, key: bytes, start_ns: int) -> FilesCache | None:
        """Open the cache of a repository, or None when the cache folder is not usable."""
        try:
            return cls(cache_root() / repo_id / "files.sqlite", key, start_ns)
        except (OSError, sqlite3.Error):
            return None

    # ---- trust -----------------------------------------------------------------------------------
    def bind_index(self, index_files: Iterable[str]) -> None:
        """Tell the cache which index files the repository has now (after loading its index)."""
        try:
            known = {r[0] for r in self._db.execute("SELECT name FROM index_files")}
        except sqlite3.Error:
            known = set()
        self._index_files = index_files  # the repository's live set: commit records it as it is then
        self._intact = self._committed > 0 and known <= set(index_files)

    def _trusted(self, gen: int) -> bool:
        return self._intact and self._trusted_from <= gen <= self._committed

    # ---- file rows -------------------------------------------------------------------------------
    def _mac(self, d: bytes, n: bytes, size: int, mtime: int, ctime: int, inode: int, ids: bytes) -> bytes:
        """A file row's MAC: every length and number first (fixed width), then the byte strings."""
        h = blake3.blake3(key=self._key)
        h.update(_FILE_MAC.pack(_FILE_TAG, len(d), len(n), len(ids), size, mtime, ctime, inode))
        h.update(d)
        h.update(n)
        h.update(ids)
        return h.digest()[:16]

    def lookup_dir(self, d: bytes) -> DirRows:
        """All usable rows of folder ``d``: name -> (size, mtime, ctime, inode, ids, trusted); the blobs
        of a row that is not ``trusted`` must be looked up in the index before it is used."""
        out: DirRows = {}
        if self._empty:
            return out
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT name, size, mtime, ctime, inode, ids, mac, gen FROM files WHERE dir=?", (d,)
                ).fetchall()
        except sqlite3.Error:
            return out
        for name, size, mtime, ctime, inode, ids, mac, gen in rows:
            try:
                if mtime >= self._start or ctime >= self._start or len(ids) % 32:
                    continue
                if self._mac(d, name, size, mtime, ctime, inode, ids) != mac:
                    continue
            except (TypeError, struct.error):  # a value of the wrong type or range: not a row we wrote
                continue
            blobs = [ids[i : i + 32] for i in range(0, len(ids), 32)]
            out[name] = (size, mtime, ctime, inode, blobs, self._trusted(gen))
        return out

    def record(
        self, d: bytes, name: bytes, size: int, mtime: int, ctime: int, inode: int, ids: list[bytes]
    ) -> None:
        if mtime >= self._start or ctime >= self._start:
            return
        blob = b"".join(ids)
        self._pending.append(
            (
                d,
                name,
                size,
                mtime,
                ctime,
                inode,
                blob,
                self._mac(d, name, size, mtime, ctime, inode, blob),
                self._gen,
            )
        )
        if len(self._pending) >= 5000:
            self._write()

    # ---- tree rows -------------------------------------------------------------------------------
    def _tree_mac(self, d: bytes, digest: bytes, tree: bytes) -> bytes:
        """A tree row's MAC: its lengths first, then the byte strings."""
        h = blake3.blake3(key=self._key)
        h.update(_TREE_MAC.pack(_TREE_TAG, len(d), len(digest), len(tree)))
        h.update(d)
        h.update(digest)
        h.update(tree)
        return h.digest()[:16]

    def lookup_tree(self, d: bytes, digest: bytes) -> bytes | None:
        """The tree id recorded for folder ``d`` when its digest was ``digest``, if that row is trusted."""
        if not self._intact:
            return None
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT digest, tree, mac, gen FROM trees WHERE dir=?", (d,)
                ).fetchone()
        except sqlite3.Error:
            return None
        try:
            if row is None or row[0] != digest or not self._trusted(row[3]):
                return None
            if self._tree_mac(d, row[0], row[1]) != row[2]:
                return None
        except (TypeError, struct.error):
            return None
        self._touched_trees.append((self._gen, d))
        return row[1]  # type: ignore[no-any-return]

    def record_tree(self, d: bytes, digest: bytes, tree: bytes) -> None:
        """Remember folder ``d``'s tree. The caller records only folders whose every entry's mtime and
        ctime are older than the backup's start (:meth:`racy` tells) and that were read without errors."""
        self._pending_trees.append((d, digest, tree, self._tree_mac(d, digest, tree), self._gen))
        if len(self._pending_trees) >= 5000:
            self._write()

    def racy(self, ns: int) -> bool:
        """Whether a timestamp is too recent for a row that relies on it."""
        return ns >= self._start

    # ---- persistence -----------------------------------------------------------------------------
    def _write(self) -> None:
        """Hand the pending rows to a thread that inserts them (SQLite lets go of the interpreter lock
        while it works, so the walk goes on); one batch at a time, the next waits for the one before."""
        if not (self._pending or self._pending_trees):
            return
        rows, trees = self._pending, self._pending_trees
        self._pending, self._pending_trees = [], []
        self._wait_inserted()
        self._inserting = threading.Thread(
            target=self._insert, args=(rows, trees), name="safehold-filescache", daemon=True
        )
        self._inserting.start()

    def _wait_inserted(self) -> None:
        if self._inserting is not None:
            self._inserting.join()
            self._inserting = None

    def _insert(self, rows: Sequence[tuple[object, ...]], trees: Sequence[tuple[object, ...]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("INSERT OR REPLACE INTO trees VALUES (?,?,?,?,?)", trees)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK") if self._db.in_transaction else None

    def commit(self, index_files: Iterable[str] | None = None) -> None:
        """Persist this backup's rows (only after its snapshot is saved) and expire old ones.

        ``index_files``: the repository's index files now (the blobs of every row are in them); by
        default the collection given to :meth:`bind_index`, as it is now.
        """
        if index_files is None:
            index_files = self._index_files
        self._write()
        self._wait_inserted()
        gen = self._gen
        try:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE trees SET gen=? WHERE dir=?", self._touched_trees)
            self._db.executemany("DELETE FROM files WHERE dir=? AND gen<?", self._purge)
            if gen > self._committed + 1:  # rows of backups that did not commit are never trusted
                for table in ("files", "trees"):
                    self._db.execute(f"DELETE FROM {table} WHERE gen > ? AND gen < ?", (self._committed, gen))  # noqa: S608
            self._db.execute("DELETE FROM index_files")
            self._db.executemany("INSERT OR IGNORE INTO index_files VALUES (?)", [(n,) for n in index_files])
            trusted_from = self._trusted_from if self._intact else gen
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('trusted_from', ?)", (trusted_from,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('gen', ?)", (gen,))
            if gen % _EXPIRE_EVERY == 0:
                old = gen - _KEEP_GENERATIONS
                self._db.execute("DELETE FROM trees WHERE gen < ?", (old,))
                # A file row lives while its folder's tree row does (unchanged folders refresh only that).
                self._db.execute(
                    "DELETE FROM files WHERE gen < ? AND dir NOT IN (SELECT dir FROM trees)", (old,)
                )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK") if self._db.in_transaction else None
        self._touched_trees.clear()
        self._purge.clear()

    def purge_dir(self, d: bytes) -> None:
        """At commit, drop the file rows of folder ``d`` that this backup did not record again (files
        that are gone; a folder read file by file records every file it still has)."""
        self._purge.append((d, self._gen))

    def close(self) -> None:
        self._wait_inserted()
        self._db.close()
