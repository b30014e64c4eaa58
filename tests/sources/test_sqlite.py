"""The sqlite source: a consistent copy of a database that another process keeps writing to."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from safehold.errors import SourceError
from safehold.sources import registry
from safehold.sources.base import SourceContext
from safehold.sources.sqlite import SQLiteSource
from tests.sources.memcomponent import MemoryComponent

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
i = 0
while True:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO ledger (amount) VALUES (?)", (i,))
    conn.execute("INSERT INTO ledger (amount) VALUES (?)", (-i,))  # pairs: every transaction sums to 0
    conn.execute("COMMIT")
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


def make_db(path: Path, journal: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
    conn.executemany(
        "INSERT INTO notes (body, data) VALUES (?, ?)",
        [(f"note {i} 😀", bytes(range(256)) * 4) for i in range(500)],
    )
    conn.commit()
    conn.close()


def content(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_registered() -> None:
    assert registry.source_class("sqlite") is SQLiteSource


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_live_copy_is_consistent_and_restores(tmp_path: Path, mem: MemoryComponent, journal: str) -> None:
    db = tmp_path / "app.sqlite3"
    make_db(db, journal)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        meta = SQLiteSource("db", {"path": str(db)}).backup(mem, SourceContext())
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    doc = json.loads(mem.files["table_statistics.json"])
    assert doc["integrity_check"] == "ok" and meta["file"] == "app.sqlite3"
    rows = doc["tables"]["ledger"]["rows"]
    assert rows >= 100 and rows % 2 == 0  # a whole number of transactions: a consistent image

    target = tmp_path / "restored" / "app.sqlite3"
    report = SQLiteSource("db", {"path": str(db)}).restore(mem, SourceContext(options={"path": str(target)}))
    assert report.details["tables"]["ledger"]["rows"] == rows
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT sum(amount), count(*) FROM ledger").fetchone() == (0, rows)
    conn.close()
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(mem.files["app.sqlite3"])
    assert content(target) == content(copy)
    assert [line for line in content(target) if "notes" in line][:3] == [
        line for line in content(db) if "notes" in line
    ][:3]


def test_restore_refuses_existing_file_without_force(tmp_path: Path, mem: MemoryComponent) -> None:
    db = tmp_path / "app.sqlite3"
    make_db(db, "wal")
    src = SQLiteSource("db", {"path": str(db)})
    src.backup(mem, SourceContext())
    before = content(db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("DELETE FROM notes")
    conn.commit()
    assert (tmp_path / "app.sqlite3-wal").stat().st_size > 0
    with pytest.raises(SourceError, match="exists") as exc:
        src.restore(mem, SourceContext())
    assert "--force" in exc.value.hint
    plan = src.restore(mem, SourceContext(dry_run=True, force=True))
    assert plan.actions[0].startswith("replace")
    conn.close()
    report = src.restore(mem, SourceContext(force=True))
    assert content(db) == before
    assert not (tmp_path / "app.sqlite3-wal").exists() or any("stale" in a for a in report.actions)


def test_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        SQLiteSource("db", {"path": str(tmp_path / "nope.db")}).backup(MemoryComponent(), SourceContext())


def test_corrupt_restore_is_refused(tmp_path: Path, mem: MemoryComponent) -> None:
    db = tmp_path / "app.sqlite3"
    make_db(db, "delete")
    src = SQLiteSource("db", {"path": str(db)})
    src.backup(mem, SourceContext())
    doc = json.loads(mem.files["table_statistics.json"])
    doc["tables"]["notes"]["rows"] = 7
    mem.files["table_statistics.json"] = json.dumps(doc).encode()
    target = tmp_path / "r.sqlite3"
    with pytest.raises(SourceError, match="notes: 500 rows restored, 7 in the dump"):
        src.restore(mem, SourceContext(options={"path": str(target)}))
    assert not target.exists() and not list(tmp_path.glob(".r.sqlite3.*"))
