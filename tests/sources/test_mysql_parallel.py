"""Parallel per-table restore of the mysql source against the real MariaDB at 127.0.0.1:3306.

A database with foreign keys, binary data, a view on a view, triggers, routines and an event is dumped,
dropped and restored over two connections: the same rows and checksums, every object back and working.
Hostile dumps (fake table headers inside values and names, statements a cut could reorder) load exactly
as a single client loads them; a failing client stops the others with its error and no password.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.mysql import MySQLSource, parallel, split
from tests.sources.conftest import mysql_root
from tests.sources.memcomponent import MemoryComponent
from tests.sources.test_mysql_split import dump as split_dump
from tests.sources.test_mysql_split import many_inserts
from tests.sources.test_mysql_split import table as split_table

BLOB = bytes(range(256)) * 4 + b"\x00'\\\n\r),(\x1a;\n-- Table structure for table `x`\n"

SCHEMA = [
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100), photo BLOB) DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT NOT NULL, total DECIMAL(10,2), "
    "note TEXT, FOREIGN KEY (customer) REFERENCES customers(id) ON DELETE CASCADE)",
    "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, `order` INT NOT NULL, sku VARCHAR(20), "
    "FOREIGN KEY (`order`) REFERENCES orders(id))",
    "CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(100))",
    "CREATE TABLE `weird``name -- Table structure for table ``x` (id INT PRIMARY KEY, s TEXT)",
    "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
    "INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id, '\n-- Table structure for table `q`\n;;'))",
    "CREATE TRIGGER items_bi BEFORE INSERT ON items FOR EACH ROW SET NEW.sku = UPPER(NEW.sku)",
    "CREATE FUNCTION order_total(o INT) RETURNS DECIMAL(10,2) READS SQL DATA "
    "RETURN (SELECT total FROM orders WHERE id = o)",
    "CREATE PROCEDURE count_orders(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM orders; END",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0",
    "CREATE VIEW big_orders AS SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer "
    "WHERE o.total > 50",
    "CREATE VIEW a_view_of_a_view AS SELECT COUNT(*) AS n FROM big_orders",
]


def fill(db: str, customers: int = 200) -> None:
    with mysql_root(db) as c, c.cursor() as cur:
        for stmt in SCHEMA:
            cur.execute(stmt)
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, %s)",
            [(i, f"Customer {i} 😀 '\\ ),( \n-- Table structure for table `y`", BLOB + bytes([i % 256]))
             for i in range(1, customers + 1)],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO orders (customer, total, note) VALUES (%s, %s, %s)",
            [(1 + i % customers, i * 1.5, "DELIMITER ;;\n\\! id\n/* x */ # y") for i in range(3 * customers)],
        )
        cur.executemany(
            "INSERT INTO items (`order`, sku) VALUES (%s, %s)",
            [(1 + i, f"sku-{i}") for i in range(min(100, 3 * customers))],
        )
        cur.execute("INSERT INTO `weird``name -- Table structure for table ``x` VALUES (1, 'a;\\n--')")


def state(db: str) -> dict[str, Any]:
    """Rows, checksums and objects of ``db``, and the objects at work."""
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        tables = sorted(r[0] for r in cur.fetchall())
        cur.execute("CHECKSUM TABLE " + ", ".join("`" + t.replace("`", "``") + "`" for t in tables))
        sums = {r[0].split(".", 1)[1]: r[1] for r in cur.fetchall()}
        counts = {}
        for t in tables:
            cur.execute("SELECT COUNT(*) FROM `" + t.replace("`", "``") + "`")
            counts[t] = cur.fetchone()[0]
        objects = {}
        for kind, q in [
            ("routines", "SELECT routine_name, routine_definition FROM information_schema.routines WHERE routine_schema=%s"),
            ("triggers", "SELECT trigger_name, action_statement FROM information_schema.triggers WHERE trigger_schema=%s"),
            ("events", "SELECT event_name, status FROM information_schema.events WHERE event_schema=%s"),
            ("views", "SELECT table_name FROM information_schema.views WHERE table_schema=%s"),
            ("fks", "SELECT constraint_name, referenced_table_name FROM information_schema.referential_constraints "
             "WHERE constraint_schema=%s"),
        ]:  # fmt: skip
            cur.execute(q, (db,))
            objects[kind] = sorted(cur.fetchall())
        working = {}
        if "orders" in tables:
            cur.execute("SELECT order_total(3), (SELECT n FROM a_view_of_a_view)")
            working["function_and_views"] = cur.fetchone()
            cur.execute("CALL count_orders(@n)")
            cur.execute("SELECT @n")
            working["procedure"] = cur.fetchone()[0]
            cur.execute("SELECT photo FROM customers WHERE id = 7")
            working["blob"] = cur.fetchone()[0]
    return {"sums": sums, "counts": counts, "objects": objects, "working": working}


def routines(db: str) -> int:
    with mysql_root() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema=%s", (db,))
        return int(cur.fetchone()[0])


def triggers_fire(db: str) -> None:
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM audit")
        before = cur.fetchone()[0]
        cur.execute("INSERT INTO orders (customer, total) VALUES (1, 99)")
        cur.execute("INSERT INTO items (`order`, sku) VALUES (1, 'low')")
        cur.execute("SELECT COUNT(*) FROM audit")
        assert cur.fetchone()[0] == before + 1
        cur.execute("SELECT sku FROM items ORDER BY id DESC LIMIT 1")
        assert cur.fetchone()[0] == "LOW"
        with pytest.raises(Exception, match="foreign key constraint fails"):
            cur.execute("INSERT INTO items (`order`, sku) VALUES (999999, 'x')")


def test_parallel_restore_equals_the_source(mysql_dbs: Any, mem: MemoryComponent) -> None:
    db = mysql_dbs()
    fill(db)
    before = state(db)
    assert all(before["objects"].values()) and before["working"]["blob"] == BLOB + bytes([7])
    src = MySQLSource("database", {"databases": [db], "checksums": True, "schema_only": False})
    src.backup(mem, SourceContext())
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{db}`")
    log: list[str] = []
    report = src.restore(mem, SourceContext(log=log.append, options={"parallel": 2}))
    assert report.details[db]["clients"] == 2 and report.details[db]["problems"] == []
    assert any("5 tables through 2 connections" in line for line in log), log
    assert state(db) == before
    triggers_fire(db)

    # the same snapshot through one client (the option), into another database: the same again
    other = mysql_dbs(create=False)
    report = src.restore(mem, SourceContext(options={"database": other, "parallel": 1}))
    assert report.details[other]["clients"] == 1
    assert state(other) == before


def fill_bulk(db: str, rows: int = 6000) -> None:
    """A table of ~8 MiB in its dump (mariadb-dump writes its rows in several INSERTs) with a trigger that counts
    inserts: created after the rows, it must not have run for any of them."""
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE zz_bulk (id INT PRIMARY KEY AUTO_INCREMENT, body BLOB, note VARCHAR(20))")
        cur.execute("CREATE TABLE zz_bulk_count (n INT NOT NULL)")
        cur.execute("INSERT INTO zz_bulk_count VALUES (0)")
        cur.execute(
            "CREATE TRIGGER zz_bulk_ai AFTER INSERT ON zz_bulk FOR EACH ROW UPDATE zz_bulk_count SET n = n + 1"
        )
        cur.executemany(
            "INSERT INTO zz_bulk (body, note) VALUES (%s, %s)",
            [(BLOB[: 300 + i % 700] + i.to_bytes(4, "big"), None if i % 3 else f"n{i}") for i in range(rows)],
        )


class CountingComponent(MemoryComponent):
    """Counts the chunks loaded; ``changing`` (a chunk number) reads one byte more after its first load,
    as a repository that gives different bytes for the same file would."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: dict[int, int] = {}
        self.by_thread: dict[int, list[int]] = {}
        self.changing = -1

    def stream_parts(self, path: str) -> list[Callable[[], bytes]]:
        parts = super().stream_parts(path)
        return [functools.partial(self._load, i, p) for i, p in enumerate(parts)]

    def _load(self, i: int, part: Callable[[], bytes]) -> bytes:
        self.loads[i] = self.loads.get(i, 0) + 1
        self.by_thread.setdefault(threading.get_ident(), []).append(i)
        return part() + (b"\n" if i == self.changing and self.loads[i] > 1 else b"")


def test_rows_of_a_big_table_go_over_both_connections(mysql_dbs: Any) -> None:
    """The INSERTs of one table are shared by the connections (after its CREATE TABLE, before its
    trigger): the same rows, the trigger created after them, the same as one client's load. Each
    connection's reader loads the chunks of its rows, not every chunk of the dump."""
    db = mysql_dbs()
    fill(db, customers=20)
    fill_bulk(db)
    before = state(db)
    mem = CountingComponent()
    src = MySQLSource("database", {"databases": [db], "checksums": True, "schema_only": False})
    src.backup(mem, SourceContext())
    assert mem.files[f"{db}/full_dump.sql"].count(b"INSERT INTO `zz_bulk` VALUES") >= 6
    n = len(mem.stream_parts(f"{db}/full_dump.sql"))
    for clients in (2, 1):
        target = mysql_dbs(create=False)
        log: list[str] = []
        mem.loads.clear()
        mem.by_thread.clear()
        report = src.restore(
            mem, SourceContext(log=log.append, options={"database": target, "parallel": clients})
        )
        assert report.details[target]["problems"] == []
        assert state(target) == before, clients
        if clients == 2:
            assert any("7 tables through 2 connections at once (the rows of 1 of them" in x for x in log), log
            # a reader passed over chunks (the other connection's rows) without loading them
            assert n >= 8 and sum(mem.loads.values()) < 3 * n - 1, (n, mem.loads)
            assert any(b - a > 1 for seq in mem.by_thread.values() for a, b in itertools.pairwise(seq))
    with mysql_root(target) as c, c.cursor() as cur:
        cur.execute("SELECT n FROM zz_bulk_count")
        assert cur.fetchone()[0] == 6000
        cur.execute("INSERT INTO zz_bulk (body) VALUES ('x')")
        cur.execute("SELECT n FROM zz_bulk_count")
        assert cur.fetchone()[0] == 6001


def test_hostile_dumps_load_as_one_client_loads_them(mysql_dbs: Any, mem: MemoryComponent) -> None:
    """Dumps edited by a hostile repository writer: what the parallel restore loads equals what one
    client loads from the same stream, whether the dump is cut or not."""
    db = mysql_dbs()
    fill(db, customers=20)
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    genuine = mem.files[f"{db}/full_dump.sql"]
    stats = json.loads(mem.files[f"{db}/table_statistics.json"])
    edits = {
        "genuine": genuine,
        # a raw line break and a fake header inside a value (a cut there would run the rest as SQL)
        "raw newline in a value": genuine.replace(
            b"INSERT INTO `audit` VALUES\n(",
            b"INSERT INTO `audit` VALUES\n(1000,'x\n--\n-- Table structure for table `items`\n--\n\n"
            b"DROP TABLE IF EXISTS `items`;\n'),\n(",
            1,
        ),
        # a row reading another table: its result depends on the order of the tables
        "subquery in a row": genuine.replace(
            b"INSERT INTO `audit` VALUES\n(",
            b"INSERT INTO `audit` VALUES\n(1001,(SELECT COUNT(*) FROM `orders`)),\n(",
            1,
        ),
        # session state left behind for the next table's statements
        "unrestored character set": genuine.replace(
            b"/*!40101 SET character_set_client = @saved_cs_client */;",
            b"SET character_set_client = latin1;",
            1,
        ),
    }
    cut: dict[str, bool] = {}
    for what, data in edits.items():
        assert what == "genuine" or data != genuine, what
        mem.files[f"{db}/full_dump.sql"] = data
        stats_for = dict(stats, tables={})  # row counts of the edited dumps are not what is compared here
        mem.files[f"{db}/table_statistics.json"] = json.dumps(stats_for).encode()
        results = {}
        for clients in (2, 1):
            target = mysql_dbs(create=False)
            log: list[str] = []
            try:
                src.restore(
                    mem, SourceContext(log=log.append, options={"database": target, "parallel": clients})
                )
                results[clients] = state(target)
            except SourceError as exc:
                results[clients] = {"error": str(exc).split(":", 1)[0]}
            if clients == 2:
                cut[what] = any("through 2 connections" in line for line in log)
        assert results[2] == results[1], what
    # both ways are taken: the genuine dump is cut, a dump with a statement that could be reordered not
    assert cut["genuine"] and not cut["subquery in a row"] and not cut["unrestored character set"], cut


class SlowComponent(MemoryComponent):
    """Streams in 16 KiB chunks, slowly after the first: the loaders start before the scan ends."""

    def stream_parts(self, path: str) -> list[Callable[[], bytes]]:
        data = self.read_bytes(path)
        return [functools.partial(self._part, data, i) for i in range(0, len(data), 1 << 14)]

    @staticmethod
    def _part(data: bytes, i: int) -> bytes:
        if i > 1 << 15:
            time.sleep(0.01)
        return data[i : i + (1 << 14)]


def test_a_dump_found_unsplittable_late_is_loaded_again_by_one_client(mysql_dbs: Any) -> None:
    db = mysql_dbs()
    fill(db)
    mem = SlowComponent()
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    data = mem.files[f"{db}/full_dump.sql"]
    restore_cs = b"/*!40101 SET character_set_client = @saved_cs_client */;"
    last = data.rindex(restore_cs)  # the last table's
    mem.files[f"{db}/full_dump.sql"] = (
        data[:last] + b"SET character_set_client = latin1;" + data[last + len(restore_cs) :]
    )
    single = mysql_dbs(create=False)
    src.restore(mem, SourceContext(options={"database": single, "parallel": 1}))
    target = mysql_dbs(create=False)
    log: list[str] = []
    report = src.restore(mem, SourceContext(log=log.append, options={"database": target, "parallel": 2}))
    assert any("leaves session variables changed (the database is emptied first" in x for x in log), log
    assert report.details[target]["clients"] == 1 and report.details[target]["problems"] == []
    assert state(target) == state(single)


def test_a_failing_client_stops_the_others(
    mysql_dbs: Any, mysql_users: Any, mem: MemoryComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mysql_dbs()
    fill(db, customers=20)
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    # a row the server refuses, in a table's part that is still cut (literal values)
    data = mem.files[f"{db}/full_dump.sql"]
    mem.files[f"{db}/full_dump.sql"] = data.replace(
        b"INSERT INTO `items` VALUES\n(", b"INSERT INTO `items` VALUES\n(1),\n(", 1
    )
    target = mysql_dbs(create=False)
    user, password = mysql_users(f"GRANT ALL ON `{target}`.* TO {{user}}")
    monkeypatch.setenv("SH_TEST_PW3", password)
    log: list[str] = []
    opts = {"database": target, "user": user, "password": {"env": "SH_TEST_PW3"}, "parallel": 2}
    with pytest.raises(SourceError, match="Column count doesn't match") as exc:
        src.restore(mem, SourceContext(log=log.append, options=opts))
    assert password not in str(exc.value) + exc.value.hint + "\n".join(log)
    assert not any("through one client" in line for line in log), log
    assert routines(target) == 0  # the tail (routines, events) never ran


def test_a_dump_that_is_not_mariadb_dumps_loads_through_one_client(
    mysql_dbs: Any, mem: MemoryComponent
) -> None:
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    mem.files[f"{db}/full_dump.sql"] = (
        b"CREATE TABLE t (id INT PRIMARY KEY);\nINSERT INTO t VALUES (1),(2);\n"
    )
    mem.files[f"{db}/table_statistics.json"] = json.dumps({"tables": {"t": {"rows": 2}}}).encode()
    target = mysql_dbs(create=False)
    log: list[str] = []
    report = src.restore(mem, SourceContext(log=log.append, options={"database": target}))
    assert report.details[target]["clients"] == 1 and report.details[target]["problems"] == []
    assert any("through one client: no table sections" in line for line in log), log


def test_a_chunk_read_otherwise_than_scanned_stops_the_load(mysql_dbs: Any) -> None:
    db = mysql_dbs()
    fill(db, customers=20)
    fill_bulk(db, rows=3000)
    mem = CountingComponent()
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    mem.changing = len(mem.stream_parts(f"{db}/full_dump.sql")) - 1  # the last: the tail is read from it
    target = mysql_dbs(create=False)
    with pytest.raises(SourceError, match="when it was scanned") as exc:
        src.restore(mem, SourceContext(options={"database": target, "parallel": 2}))
    assert "safehold check" in exc.value.hint
    assert routines(target) == 0  # the tail (routines, events) never ran


def test_lanes_wait_for_the_rows_of_a_table_whose_head_another_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The claims (no server): a lane with nothing else to do waits while another runs a table's head
    (the last table: it is not done yet), then shares its rows; with a big table before another it does
    not move past it; the table's tail comes after every row and waits for them to run."""
    monkeypatch.setattr(parallel, "SHARE_FROM", 64)

    def lanes(*tables: bytes) -> tuple[parallel._Shared, Callable[[parallel._Lane], tuple[str, int] | None]]:
        layout = split.scan([split_dump(*tables)])
        shared = parallel._Shared(None, 1 << 30)
        shared.sections, shared.preamble, shared.layout = layout.sections, layout.preamble, layout

        def claim(lane: parallel._Lane) -> tuple[str, int] | None:
            with shared.cond:
                got = shared._claim(lane)
            if got is None:
                return None
            assert isinstance(got, tuple), got
            lane.pos = got[2]
            return got[0].kind, got[1]

        return shared, claim

    for tables in [(many_inserts(),), (many_inserts(), split_table(b"u"))]:
        shared, claim = lanes(*tables)
        a, b = parallel._Lane(), parallel._Lane()
        assert claim(a) == ("head", ANY)
        assert claim(b) is None  # waits (neither done nor past t's rows at table u)
        while (first := claim(a)) is not None and first[0] == "head":
            pass
        assert first is not None and first[0] == "row"  # the next row is reserved for a (half the rest)
        assert claim(b) == ("row", ANY) and claim(a) == ("row", ANY)
        assert claim(b) == ("tail", ANY)  # ENABLE KEYS: after the rows, which have not run yet
        t = shared.runs[0]
        assert t.outstanding == 3 and sorted(t.lanes) == sorted([id(a), id(b)])
