"""The files cache: its row MAC is injective (bytes cannot move between a name and its blob ids), a cache of
another format is emptied rather than misread, and rows of the wrong types are ignored, not a crash."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from safehold.engine.backup.filescache import FORMAT, FilesCache

OLD = 10**18  # ns: long before any backup start


def test_moving_bytes_between_name_and_ids_breaks_the_mac(tmp_path: Path) -> None:
    key, path = os.urandom(32), tmp_path / "fc.sqlite"
    ids = [os.urandom(32), os.urandom(32)]
    c = FilesCache(path, key, time.time_ns())
    c.record(b"/d", b"name", 10, OLD, OLD, 7, ids)
    c.commit()
    c.close()
    db = sqlite3.connect(path)
    row = db.execute("SELECT dir, name, size, mtime, ctime, inode, ids, mac, gen FROM files").fetchone()
    # a forged row: the first id moved into the name; name + ids are the same bytes as before
    forged = (row[0], row[1] + row[6][:32], row[2], row[3], row[4], row[5], row[6][32:], row[7], row[8])
    db.execute("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?)", forged)
    db.commit()
    db.close()
    c = FilesCache(path, key, time.time_ns())
    assert set(c.lookup_dir(b"/d")) == {b"name"}  # the forged row is not trusted
    c.close()


def test_a_cache_of_another_format_is_emptied_not_read(tmp_path: Path) -> None:
    path = tmp_path / "fc.sqlite"
    db = sqlite3.connect(path)  # a format-1 cache: no format record
    db.executescript(
        "CREATE TABLE files (dir BLOB NOT NULL, name BLOB NOT NULL, size INTEGER NOT NULL, mtime INTEGER "
        "NOT NULL, ctime INTEGER NOT NULL, inode INTEGER NOT NULL, ids BLOB NOT NULL, mac BLOB NOT NULL, "
        "gen INTEGER NOT NULL, PRIMARY KEY (dir, name)) WITHOUT ROWID;"
        "CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    )
    db.execute(
        "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?)", (b"/d", b"x", 1, 1, 1, 1, b"i" * 32, b"m" * 16, 1)
    )
    db.execute("INSERT INTO meta VALUES ('gen', 1)")
    db.commit()
    db.close()
    c = FilesCache(path, os.urandom(32), time.time_ns())
    assert c.lookup_dir(b"/d") == {}
    c.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM files").fetchone() == (0,)
    assert db.execute("SELECT v FROM meta WHERE k='format'").fetchone() == (FORMAT,)
    db.close()


def test_rows_of_the_wrong_type_or_range_are_ignored(tmp_path: Path) -> None:
    key, path = os.urandom(32), tmp_path / "fc.sqlite"
    c = FilesCache(path, key, time.time_ns())
    c.record(b"/d", b"good", 10, OLD, OLD, 7, [os.urandom(32)])
    c.commit()
    c.close()
    db = sqlite3.connect(path)
    for name, size, inode in ((b"text", "ten", 1), (b"neg", -1, 1), (b"huge", 2**70, 1), (b"ino", 1, -5)):
        db.execute(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?)",
            (b"/d", name, str(size) if size == 2**70 else size, OLD, OLD, inode, b"i" * 32, b"m" * 16, 1),
        )
    db.commit()
    db.close()
    c = FilesCache(path, key, time.time_ns())
    assert set(c.lookup_dir(b"/d")) == {b"good"}
    c.close()


def test_rows_inserted_in_the_background_while_the_walk_looks_up_all_arrive(tmp_path: Path) -> None:
    """Rows go to SQLite in batches of 5,000 from a background thread while lookups of other folders go
    on; after commit every row is there and trusted by the next backup."""
    key, path = os.urandom(32), tmp_path / "fc.sqlite"
    c = FilesCache(path, key, time.time_ns())
    c.record(b"/seed", b"x", 1, OLD, OLD, 1, [os.urandom(32)])
    c.commit()
    c.close()
    c = FilesCache(path, key, time.time_ns())
    c.bind_index([])
    want = {}
    for d in range(60):
        folder = b"/t/%d" % d
        assert c.lookup_dir(folder) == {}  # a folder not seen before, looked up while batches insert
        for f in range(250):  # 15,000 rows: three batches go to the inserting thread mid-walk
            ids = [os.urandom(32)]
            c.record(folder, b"f%d" % f, f, OLD, OLD, d * 1000 + f, ids)
            want[(folder, b"f%d" % f)] = (f, OLD, OLD, d * 1000 + f, ids)
        c.record_tree(folder, b"digest", b"t" * 32)
    c.commit()
    c.close()
    c = FilesCache(path, key, time.time_ns())
    c.bind_index([])
    for d in range(60):
        rows = c.lookup_dir(b"/t/%d" % d)
        assert len(rows) == 250
        for name, row in rows.items():
            assert row[:5] == want[(b"/t/%d" % d, name)] and row[5]
        assert c.lookup_tree(b"/t/%d" % d, b"digest") == b"t" * 32
    c.close()
