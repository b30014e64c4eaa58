"""``safehold demo`` runs end to end with the real CLI: files back up and restore identical, the SQLite
database goes through the sqlite source in a snapshot of components and comes back identical."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from safehold.operations.demo import database_fingerprint
from tests.helpers.fixtures import Result


def test_demo_with_sqlite(tmp_path: Path, run: Callable[..., Result]) -> None:
    workdir = tmp_path / "demo"
    r = run("demo", "--workdir", str(workdir), password=None)
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    steps = [line.split(".", 1)[0] for line in lines if line[:1].isdigit()]
    assert steps == [str(i) for i in range(1, 11)]
    assert "all " in r.out and "entries identical" in r.out
    sqlite_line = next(line for line in lines if line.startswith("7."))
    assert "'database' (sqlite" in sqlite_line and "customers 300, orders 2000, settings 3" in sqlite_line
    restored_line = next(line for line in lines if line.startswith("8."))
    assert "integrity_check ok" in restored_line and "same SELECT results" in restored_line
    assert "no errors" in next(line for line in lines if line.startswith("9."))
    drill_line = next(line for line in lines if line.startswith("10."))
    assert "config: " in drill_line and "identical to the snapshot" in drill_line, drill_line
    assert "database: app.sqlite3: integrity check ok, row counts of 3 tables match" in drill_line, drill_line

    # the restored database is really there and whole
    db = next(workdir.glob("restored/**/database/app.sqlite3"))
    fp = database_fingerprint(db)
    assert fp["integrity_check"] == "ok"
    assert fp["rows"] == {"customers": 300, "orders": 2000, "settings": 3}
    assert fp["sha256"][:12] in restored_line
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT value FROM settings WHERE key='currency'").fetchone() == ("EUR",)
    finally:
        conn.close()
