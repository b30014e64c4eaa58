"""The postgresql source against the real PostgreSQL at 127.0.0.1:5432 (trust authentication)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from safehold.errors import SourceError
from safehold.sources import registry
from safehold.sources.base import SourceContext
from safehold.sources.postgresql import PostgreSQLSource, table_statistics
from tests.sources.conftest import free_port, pg_admin
from tests.sources.memcomponent import MemoryComponent

SCHEMA = [
    "CREATE SCHEMA billing",
    "CREATE TABLE people (id serial PRIMARY KEY, name text, photo bytea, score double precision, "
    "born timestamptz, tags text[])",
    "CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, person int REFERENCES people(id), "
    "amount numeric(12,2))",
    "CREATE TABLE audit (id serial PRIMARY KEY, what text)",
    "CREATE TABLE empty_one (id int)",
    "CREATE FUNCTION log_people() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN INSERT INTO audit (what) VALUES ('insert ' || NEW.id); RETURN NEW; END$$",
    "CREATE TRIGGER people_ai AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION log_people()",
    "CREATE VIEW people_names AS SELECT id, name FROM people",
]


def fill(db: str, rows: int = 200) -> None:
    with pg_admin(db) as c:
        for stmt in SCHEMA:
            c.execute(stmt)
        with c.cursor() as cur:
            cur.executemany(
                "INSERT INTO people (name, photo, score, born, tags) VALUES (%s, %s, %s, now(), %s)",
                [
                    (f"Person {i} 😀 'q' \\", bytes(range(256)) + bytes([i % 256]), i / 3, ["a", "b,c"])
                    for i in range(rows)
                ],
            )
        c.execute("INSERT INTO people (name) VALUES (NULL)")
        c.execute("INSERT INTO billing.invoices (person, amount) SELECT id, id * 1.5 FROM people")


def state(db: str) -> dict[str, Any]:
    with pg_admin(db) as c:
        stats = table_statistics(c, True)
        funcs = [r[0] for r in c.execute("SELECT proname FROM pg_proc WHERE proname = 'log_people'")]
        trig = [r[0] for r in c.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")]
        views = [r[0] for r in c.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")]
        seq = c.execute("SELECT last_value FROM people_id_seq").fetchone()
    return {"stats": stats, "funcs": funcs, "trig": trig, "views": views, "seq": seq}


def drop(db: str) -> None:
    with pg_admin() as c:
        c.execute(f'DROP DATABASE "{db}" WITH (FORCE)')


def test_registered() -> None:
    assert registry.source_class("postgresql") is PostgreSQLSource


def test_dump_drop_restore_identical(pg_dbs: Any, mem: MemoryComponent) -> None:
    db = pg_dbs()
    fill(db)
    before = state(db)
    assert before["stats"]["public.people"]["rows"] == 201
    src = PostgreSQLSource("pg", {"databases": [db]})
    meta = src.backup(mem, SourceContext())
    assert mem.files[f"{db}/dump.pgcustom"].startswith(b"PGDMP")
    assert meta["globals"] == "complete" and b"CREATE ROLE" in mem.files["globals.sql"]
    stats = json.loads(mem.files[f"{db}/table_statistics.json"])
    assert stats["exact"] is True
    assert {t: (s["rows"], s["checksum"]) for t, s in stats["tables"].items()} == {
        t: (s["rows"], s["checksum"]) for t, s in before["stats"].items()
    }
    assert "billing.invoices" in mem.files[f"{db}/table_statistics.txt"].decode()
    assert meta["databases"][db]["statistics_exact"] and meta["server_version"].startswith("15")

    drop(db)
    report = src.restore(mem, SourceContext())
    assert report.actions[0].startswith(f"create database {db}")
    assert state(db) == before


def test_restore_other_name_refuse_nonempty_force(pg_dbs: Any, mem: MemoryComponent) -> None:
    db = pg_dbs()
    fill(db, rows=10)
    before = state(db)
    src = PostgreSQLSource("pg", {"databases": [db], "globals": False})
    src.backup(mem, SourceContext())
    other = pg_dbs(create=False)
    plan = src.restore(mem, SourceContext(dry_run=True, options={"database": other}))
    assert plan.actions
    with pg_admin() as c:
        assert not c.execute("SELECT 1 FROM pg_database WHERE datname=%s", (other,)).fetchone()
    src.restore(mem, SourceContext(options={"database": other}))
    assert state(other) == before
    with pytest.raises(SourceError, match="not empty") as exc:
        src.restore(mem, SourceContext(options={"database": other}))
    assert "--force" in exc.value.hint
    with pg_admin(other) as c:
        c.execute("DELETE FROM audit")
    src.restore(mem, SourceContext(force=True, options={"database": other}))
    assert state(other) == before


def test_statistics_match_the_dump_under_concurrent_writes(pg_dbs: Any, mem: MemoryComponent) -> None:
    """Rows inserted while pg_dump runs are in neither the dump nor its statistics: the restore of the
    dump reproduces the statistics exactly."""
    db = pg_dbs()
    fill(db, rows=2000)
    stop = threading.Event()

    def writer() -> None:
        with pg_admin(db) as c:
            while not stop.is_set():
                c.execute("INSERT INTO audit (what) VALUES ('concurrent')")

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.1)
        PostgreSQLSource("pg", {"databases": [db], "globals": False}).backup(mem, SourceContext())
    finally:
        stop.set()
        t.join()
    other = pg_dbs(create=False)
    report = PostgreSQLSource("pg", {"databases": [db]}).restore(
        mem, SourceContext(options={"database": other})
    )
    assert report.details[other]["problems"] == []
    with pg_admin(db) as c:
        live = c.execute("SELECT count(*) FROM audit").fetchone()[0]
    recorded = json.loads(mem.files[f"{db}/table_statistics.json"])["tables"]["public.audit"]["rows"]
    assert live > recorded  # the writer kept going; the statistics describe the dump, not the live table


def test_globals_as_unprivileged_role(pg_dbs: Any, pg_roles: Any, mem: MemoryComponent) -> None:
    db = pg_dbs()
    role = pg_roles()  # CONNECT on a database is granted to PUBLIC by default
    meta = PostgreSQLSource("pg", {"databases": [db], "user": role}).backup(mem, SourceContext())
    assert meta["globals"] in ("without role passwords",) or meta["globals"].startswith("not permitted")
    if meta["globals"] == "without role passwords":
        assert b"CREATE ROLE" in mem.files["globals.sql"]


def test_unreachable_server_fails(pg_dbs: Any) -> None:
    src = PostgreSQLSource("pg", {"databases": ["x"], "port": free_port()})
    with pytest.raises(SourceError, match="cannot connect to PostgreSQL"):
        src.backup(MemoryComponent(), SourceContext())


def test_missing_tool(tool_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tool_path([]))
    with pytest.raises(SourceError, match="pg_dump not found") as exc:
        PostgreSQLSource("pg", {"databases": ["x"]}).backup(MemoryComponent(), SourceContext())
    assert "postgresql-client" in exc.value.hint


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('/usr/bin/pg_dump "$@" | head -c 2000\nkill -KILL $$\n', "killed by signal 9"),
        (
            '/usr/bin/pg_dump "$@" | head -c 2000\necho "pg_dump: error: connection lost" >&2\nexit 1\n',
            "exited with status 1: (?s:.*)connection lost",
        ),
        ('echo "not a dump"\n', "not a pg_dump archive"),
        ("exit 0\n", "empty dump"),
    ],
)
def test_dump_cut_half_way_fails_closed(pg_dbs: Any, tmp_path: Path, script: str, message: str) -> None:
    db = pg_dbs()
    fill(db, rows=100)
    wrapper = tmp_path / "pg_dump"
    wrapper.write_text("#!/bin/sh\n" + script)
    wrapper.chmod(0o755)
    mem = MemoryComponent()
    with pytest.raises(SourceError, match=message):
        PostgreSQLSource("pg", {"databases": [db], "pg_dump": str(wrapper)}).backup(mem, SourceContext())
    assert f"{db}/table_statistics.json" not in mem.files


def test_restore_verification_detects_difference(pg_dbs: Any, mem: MemoryComponent) -> None:
    db = pg_dbs()
    fill(db, rows=5)
    src = PostgreSQLSource("pg", {"databases": [db], "globals": False})
    src.backup(mem, SourceContext())
    doc = json.loads(mem.files[f"{db}/table_statistics.json"])
    doc["tables"]["public.people"]["checksum"] = "0" * 32
    mem.files[f"{db}/table_statistics.json"] = json.dumps(doc).encode()
    with pytest.raises(SourceError, match=r"public\.people: checksum"):
        src.restore(mem, SourceContext(options={"database": pg_dbs(create=False)}))
