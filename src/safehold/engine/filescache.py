"""The local files cache: lets a backup skip reading files that have not changed.

One SQLite file per repository (``$XDG_CACHE_HOME/safehold/<repo id>/files.sqlite``). A row maps a
file (folder + name) to its size, mtime, ctime and inode and the blob ids of its content. Each row carries
a keyed BLAKE3 MAC over all its fields (key from the repository's ``cache`` subkey), so a damaged or
tampered row is ignored, never trusted. A row is only written, and only trusted, when the file's mtime
and ctime are older than the start of the backup that records it: a file modified in the same clock tick
as the backup could change again without its timestamps moving.

Even a trusted row is only used when every blob it names is still in the repository's index.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path

import blake3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  dir BLOB NOT NULL, name BLOB NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL, inode INTEGER NOT NULL, ids BLOB NOT NULL, mac BLOB NOT NULL,
  gen INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""
_KEEP_GENERATIONS = 10


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
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._key = key
        self._start = start_ns
        row = self._db.execute("SELECT v FROM meta WHERE k='gen'").fetchone()
        self._gen = (row[0] if row else 0) + 1
        self._pending: list[tuple[bytes, bytes, int, int, int, int, bytes, bytes, int]] = []
        self.hits = 0

    @classmethod
    def for_repository(cls, repo_id: str, key: bytes, start_ns: int) -> FilesCache | None:
        """Open the cache of a repository, or None when the cache folder is not usable."""
        try:
            return cls(cache_root() / repo_id / "files.sqlite", key, start_ns)
        except (OSError, sqlite3.Error):
            return None

    def _mac(self, d: bytes, n: bytes, size: int, mtime: int, ctime: int, inode: int, ids: bytes) -> bytes:
        h = blake3.blake3(key=self._key)
        h.update(struct.pack(">IQqqQ", len(d), size, mtime, ctime, inode))
        h.update(d)
        h.update(b"\0")
        h.update(n)
        h.update(ids)
        return h.digest()[:16]

    def lookup_dir(self, d: bytes) -> dict[bytes, tuple[int, int, int, int, list[bytes]]]:
        """All trusted rows of folder ``d``: name -> (size, mtime, ctime, inode, ids)."""
        out: dict[bytes, tuple[int, int, int, int, list[bytes]]] = {}
        try:
            rows = self._db.execute(
                "SELECT name, size, mtime, ctime, inode, ids, mac FROM files WHERE dir=?", (d,)
            ).fetchall()
        except sqlite3.Error:
            return out
        for name, size, mtime, ctime, inode, ids, mac in rows:
            if mtime >= self._start or ctime >= self._start or len(ids) % 32:
                continue
            if self._mac(d, name, size, mtime, ctime, inode, ids) != mac:
                continue
            out[name] = (size, mtime, ctime, inode, [ids[i : i + 32] for i in range(0, len(ids), 32)])
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

    def _write(self) -> None:
        if not self._pending:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)", self._pending)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK") if self._db.in_transaction else None
        self._pending.clear()

    def commit(self) -> None:
        """Persist this backup's rows (only after its snapshot is saved) and expire old ones."""
        self._write()
        try:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('gen', ?)", (self._gen,))
            self._db.execute("DELETE FROM files WHERE gen < ?", (self._gen - _KEEP_GENERATIONS,))
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self._db.close()
