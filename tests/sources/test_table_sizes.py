"""Table statistics record each table's size on the server (data and index bytes) next to its row count,
for MySQL/MariaDB, PostgreSQL and SQLite, in table_statistics.json and the readable .txt."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from safehold.sources.base import SourceContext
from safehold.sources.dbstats import format_statistics
from safehold.sources.mysql import MySQLSource
from safehold.sources.postgresql import PostgreSQLSource
from safehold.sources.sqlite import SQLiteSource
from tests.sources.conftest import mysql_root, pg_admin
from tests.sources.memcomponent import MemoryComponent


def _check(tables: dict[str, dict[str, Any]], big: str, small: str) -> None:
    for name in (big, small):
        assert isinstance(tables[name]["table_bytes"], int) and isinstance(tables[name]["index_bytes"], int)
    assert tables[big]["table_bytes"] > tables[small]["table_bytes"]
    assert tables[big]["index_bytes"] > 0  # the secondary index


def test_mysql(mysql_dbs: Any, mem: MemoryComponent) -> None:
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(200), KEY v (v)) ENGINE=InnoDB")
        cur.executemany("INSERT INTO big VALUES (%s, %s)", [(i, "x" * 150 + str(i)) for i in range(3000)])
        cur.execute("CREATE TABLE small (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("ANALYZE TABLE big, small")
    meta = MySQLSource("database", {"databases": [db], "user": "root"}).backup(mem, SourceContext())
    doc = json.loads(mem.files[f"{db}/table_statistics.json"])
    _check(doc["tables"], "big", "small")
    assert doc["tables"]["big"]["rows"] == 3000
    assert meta["databases"][db]["table_statistics"]["big"]["index_bytes"] > 0
    text = mem.files[f"{db}/table_statistics.txt"].decode()
    header = next(line for line in text.splitlines() if line.startswith("table"))
    assert header.split()[:4] == ["table", "rows", "data", "index"]
    assert "iB" in next(line for line in text.splitlines() if line.startswith("big "))


def test_postgresql(pg_dbs: Any, mem: MemoryComponent) -> None:
    db = pg_dbs()
    with pg_admin(db) as c:
        c.execute("CREATE TABLE big (id INT PRIMARY KEY, v TEXT)")
        c.execute("CREATE INDEX big_v ON big (v)")
        c.execute("INSERT INTO big SELECT g, repeat('x', 150) || g FROM generate_series(1, 3000) g")
        c.execute("CREATE TABLE small (id INT)")
    PostgreSQLSource("pg", {"databases": [db], "globals": False}).backup(mem, SourceContext())
    doc = json.loads(mem.files[f"{db}/table_statistics.json"])
    _check(doc["tables"], "public.big", "public.small")
    assert doc["tables"]["public.small"]["index_bytes"] == 0


def test_sqlite(tmp_path: Path, mem: MemoryComponent) -> None:
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        c.execute("CREATE INDEX big_v ON big (v)")
        c.executemany("INSERT INTO big VALUES (?, ?)", [(i, "x" * 150 + str(i)) for i in range(3000)])
        c.execute("CREATE TABLE small (id INTEGER PRIMARY KEY)")
    c.close()
    meta = SQLiteSource("db", {"path": str(path)}).backup(mem, SourceContext())
    _check(meta["table_statistics"], "big", "small")
    assert meta["table_statistics"]["small"]["index_bytes"] == 0


def test_text_without_sizes_stays_readable() -> None:
    """Statistics recorded before sizes were (or where the server gives none) show empty size columns."""
    text = format_statistics("t", {"a": {"rows": 5, "checksum": 17}}, [])
    row = next(line for line in text.splitlines() if line.startswith("a "))
    assert row.split() == ["a", "5", "17"]
