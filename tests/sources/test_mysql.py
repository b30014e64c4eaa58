"""The mysql source against the real MariaDB at 127.0.0.1:3306: dump -> drop -> restore -> identical."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safehold.errors import SourceError
from safehold.sources import registry
from safehold.sources.base import SourceContext
from safehold.sources.dbstats import MySQLDumpTally
from safehold.sources.mysql import MySQLSource, check_mysql_privileges, definer_filter
from tests.sources.conftest import mysql_root
from tests.sources.memcomponent import MemoryComponent

BLOB = bytes(range(256)) * 3 + b"\x00'\\\n\r),(\x1a"

SCHEMA = [
    "CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), note TEXT, "
    "photo BLOB, created DATETIME(6)) DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, person INT, what VARCHAR(20))",
    "CREATE TABLE empty_one (id INT PRIMARY KEY)",
    "CREATE TABLE retell_agents (id VARCHAR(40) PRIMARY KEY, config JSON)",
    "CREATE TRIGGER people_ai AFTER INSERT ON people FOR EACH ROW "
    "INSERT INTO audit (person, what) VALUES (NEW.id, 'insert')",
    "CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "CREATE PROCEDURE count_people(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM people; END",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0",
    "CREATE VIEW people_names AS SELECT id, name FROM people",
]


def fill(db: str, rows: int = 300) -> None:
    with mysql_root(db) as c, c.cursor() as cur:
        for stmt in SCHEMA:
            cur.execute(stmt)
        cur.executemany(
            "INSERT INTO people (name, note, photo, created) VALUES (%s, %s, %s, NOW(6))",
            [
                (
                    f"Person {i} 😀",
                    f"line1\nline2\ttab 'quote' \\ back ),( tricky {i}",
                    BLOB + bytes([i % 256]),
                )
                for i in range(rows)
            ],
        )
        cur.execute("INSERT INTO people (name, note, photo) VALUES (NULL, NULL, NULL)")
        cur.execute("""INSERT INTO retell_agents VALUES ('agent_1', '{"voice": "nova", "n": 1}')""")


def table_state(db: str) -> dict[str, Any]:
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        tables = sorted(r[0] for r in cur.fetchall())
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
        sums = {r[0].split(".", 1)[1]: r[1] for r in cur.fetchall()}
        counts = {}
        for t in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            counts[t] = cur.fetchone()[0]
        cur.execute("SELECT routine_name FROM information_schema.routines WHERE routine_schema=%s", (db,))
        routines = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema=%s", (db,))
        triggers = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT event_name FROM information_schema.events WHERE event_schema=%s", (db,))
        events = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT table_name FROM information_schema.views WHERE table_schema=%s", (db,))
        views = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT name, photo FROM people ORDER BY id LIMIT 2")
        sample = cur.fetchall()
    return {
        "sums": sums,
        "counts": counts,
        "routines": routines,
        "triggers": triggers,
        "events": events,
        "views": views,
        "sample": sample,
    }


def drop(db: str) -> None:
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{db}`")


def test_registered() -> None:
    assert registry.source_class("mysql") is MySQLSource


def test_dump_drop_restore_identical(mysql_dbs: Any, mem: MemoryComponent) -> None:
    db = mysql_dbs()
    fill(db)
    before = table_state(db)
    assert before["routines"] and before["triggers"] and before["events"] and before["views"]
    src = MySQLSource("database", {"databases": [db], "text_exports": ["retell_agents"], "checksums": True})
    meta = src.backup(mem, SourceContext())

    assert sorted(p for p in mem.files if p.startswith(db)) == sorted(
        f"{db}/{f}"
        for f in [
            "full_dump.sql",
            "schema_only.sql",
            "table_statistics.json",
            "table_statistics.txt",
            "tables/retell_agents.tsv",
        ]
    )
    dump = mem.files[f"{db}/full_dump.sql"]
    assert b"-- Dump completed" in dump[-200:]
    assert "😀".encode() in dump and b"0x000102" in dump  # utf8mb4 text, hex blobs
    assert b"INSERT INTO `people`" not in mem.files[f"{db}/schema_only.sql"]
    stats = json.loads(mem.files[f"{db}/table_statistics.json"])
    assert {t: s["rows"] for t, s in stats["tables"].items()} == before["counts"]
    assert all(s["checksum_exact"] for s in stats["tables"].values())
    assert {t: s["checksum"] for t, s in stats["tables"].items()} == before["sums"]
    assert "people" in mem.files[f"{db}/table_statistics.txt"].decode()
    tsv = mem.files[f"{db}/tables/retell_agents.tsv"].decode()
    assert tsv.splitlines()[0] == "id\tconfig" and "agent_1" in tsv
    m = meta["databases"][db]
    assert m["rows"] == sum(before["counts"].values()) and m["dump_bytes"] == len(dump)
    assert meta["dump_tool"] in ("mariadb-dump", "mysqldump") and meta["server_version"]
    assert "" not in mem.lines

    drop(db)
    report = src.restore(mem, SourceContext())
    assert table_state(db) == before
    assert report.details[db]["problems"] == []
    assert any("create database" in a for a in report.actions)


def test_restore_other_name_and_refuse_nonempty(mysql_dbs: Any, mem: MemoryComponent) -> None:
    db = mysql_dbs()
    fill(db, rows=20)
    before = table_state(db)
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    other = mysql_dbs(create=False)

    plan = src.restore(mem, SourceContext(dry_run=True, options={"database": other}))
    assert plan.actions[0].startswith(f"create database {other}")
    with mysql_root() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name=%s", (other,))
        assert cur.fetchone()[0] == 0  # a dry run changes nothing

    src.restore(mem, SourceContext(options={"database": other}))
    assert table_state(other) == before

    with pytest.raises(SourceError, match="not empty") as exc:
        src.restore(mem, SourceContext(options={"database": other}))
    assert "--force" in exc.value.hint
    with mysql_root(other) as c, c.cursor() as cur:
        cur.execute("INSERT INTO audit (person, what) VALUES (1, 'extra')")
    report = src.restore(mem, SourceContext(force=True, options={"database": other}))
    assert any(a.startswith("drop database") for a in report.actions)
    assert table_state(other) == before


def test_verification_detects_a_difference(mysql_dbs: Any, mem: MemoryComponent) -> None:
    db = mysql_dbs()
    fill(db, rows=5)
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    stats = json.loads(mem.files[f"{db}/table_statistics.json"])
    stats["tables"]["people"]["rows"] += 1
    mem.files[f"{db}/table_statistics.json"] = json.dumps(stats).encode()
    other = mysql_dbs(create=False)
    with pytest.raises(SourceError, match="people: 6 rows restored, 7 in the dump"):
        src.restore(mem, SourceContext(options={"database": other}))


def test_least_privilege_user_and_doctor(
    mysql_dbs: Any, mysql_users: Any, mem: MemoryComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mysql_dbs()
    fill(db, rows=10)
    user, password = mysql_users(
        f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{db}`.* TO {{user}}",
        "GRANT SELECT ON mysql.proc TO {user}",
    )
    monkeypatch.setenv("SH_TEST_PW", password)
    opts = {"databases": [db], "user": user, "password": {"env": "SH_TEST_PW"}}
    assert check_mysql_privileges(opts) == []
    MySQLSource("database", opts).backup(mem, SourceContext())
    dump = mem.files[f"{db}/full_dump.sql"]
    for needle in (b"PROCEDURE `count_people`", b"FUNCTION `double_it`", b"TRIGGER", b"EVENT `nightly`"):
        assert needle in dump
    assert password not in "\n".join(mem.lines)

    # without TRIGGER and mysql.proc the dump would silently lose triggers and routines: refuse
    weak, weak_pw = mysql_users(f"GRANT SELECT, SHOW VIEW, EVENT ON `{db}`.* TO {{user}}")
    monkeypatch.setenv("SH_TEST_PW", weak_pw)
    opts = {"databases": [db], "user": weak, "password": {"env": "SH_TEST_PW"}}
    report = check_mysql_privileges(opts)
    assert f"GRANT TRIGGER ON `{db}`.* TO '{weak}'@'127.0.0.1';" in report
    assert f"GRANT SELECT ON mysql.proc TO '{weak}'@'127.0.0.1';" in report
    with pytest.raises(SourceError, match="lacks TRIGGER") as exc:
        MySQLSource("database", opts).backup(MemoryComponent(), SourceContext())
    assert "GRANT TRIGGER" in exc.value.hint
    # the granted fix really is enough
    with mysql_root() as c, c.cursor() as cur:
        for stmt in report[-2:]:
            cur.execute(stmt)
    assert check_mysql_privileges(opts) == []


def test_restore_as_other_user_with_strip_definers(
    mysql_dbs: Any, mysql_users: Any, mem: MemoryComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mysql_dbs()
    fill(db, rows=3)
    before = table_state(db)
    src = MySQLSource("database", {"databases": [db], "schema_only": False})
    src.backup(mem, SourceContext())
    target = mysql_dbs(create=False)
    user, password = mysql_users(f"GRANT ALL ON `{target}`.* TO {{user}}")
    monkeypatch.setenv("SH_TEST_PW2", password)
    opts = {"database": target, "user": user, "password": {"env": "SH_TEST_PW2"}, "strip_definers": True}
    src.restore(mem, SourceContext(options=opts))
    assert table_state(target) == before


def test_wrong_password_fails_without_leaking(
    mysql_dbs: Any, mysql_users: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mysql_dbs()
    user, _ = mysql_users(f"GRANT SELECT ON `{db}`.* TO {{user}}")
    monkeypatch.setenv("SH_TEST_PW", "wrong-Secret-123")
    src = MySQLSource("database", {"databases": [db], "user": user, "password": {"env": "SH_TEST_PW"}})
    with pytest.raises(SourceError, match="Access denied") as exc:
        src.backup(MemoryComponent(), SourceContext())
    assert "wrong-Secret-123" not in str(exc.value) + exc.value.hint


def test_missing_tool(mysql_dbs: Any, tool_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = mysql_dbs()
    monkeypatch.setenv("PATH", tool_path([]))
    with pytest.raises(SourceError, match="mariadb-dump / mysqldump not found") as exc:
        MySQLSource("database", {"databases": [db]}).backup(MemoryComponent(), SourceContext())
    assert "apt-get install mariadb-client" in exc.value.hint


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('/usr/bin/mariadb-dump "$@" | head -c 3000\nexit 0\n', "truncated"),
        ('/usr/bin/mariadb-dump "$@" | head -c 3000\nkill -KILL $$\n', "killed by signal 9"),
        (
            '/usr/bin/mariadb-dump "$@" | head -c 3000\necho "mariadb-dump: Error 2013: Lost connection" >&2\n'
            "exit 2\n",
            "exited with status 2: (?s:.*)Error 2013: Lost connection",
        ),
        ("exit 0\n", "empty dump"),
    ],
)
def test_dump_cut_half_way_fails_closed(mysql_dbs: Any, tmp_path: Path, script: str, message: str) -> None:
    db = mysql_dbs()
    fill(db, rows=50)
    wrapper = tmp_path / "mariadb-dump-wrapper"
    wrapper.write_text("#!/bin/sh\n" + script)
    wrapper.chmod(0o755)
    mem = MemoryComponent()
    with pytest.raises(SourceError, match=message):
        MySQLSource("database", {"databases": [db], "dump_tool": str(wrapper)}).backup(mem, SourceContext())
    assert f"{db}/table_statistics.json" not in mem.files


def test_missing_database_fails(mysql_dbs: Any) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        MySQLSource("database", {"databases": [mysql_dbs(create=False)]}).backup(
            MemoryComponent(), SourceContext()
        )


def test_tally_counts_tricky_rows() -> None:
    tally = MySQLDumpTally()
    dump = (
        b"CREATE TABLE `a``b` (\n  `x` int\n);\n"
        b"INSERT INTO `a``b` VALUES (1,'x),(y'),(2,'it\\'s \\\\'),(3,0x2C29);\n"
        b"INSERT INTO `c` VALUES (NULL);\n"
        b"CREATE TABLE `empty` (\n);\n"
    )
    for i in range(0, len(dump), 7):  # lines split across blocks
        tally(dump[i : i + 7])
    res = tally.result()
    assert {k: v["rows"] for k, v in res.items()} == {"a`b": 3, "c": 1, "empty": 0}


def test_tally_counts_large_mariadb_inserts_in_any_blocks() -> None:
    """Large INSERTs (numpy's count), values holding ``;``, ``;\\n`` and ``\\n(`` escaped, and
    every way a block can end: the counts equal those of the whole dump in one block."""
    rows = [
        b"(%d,'a;b;c;;',0x3B0A28,'x\\n(y;\\n')" % i if i % 3 else b"(%d,'%s')" % (i, b";" * 100)
        for i in range(20_000)
    ]
    dump = (
        b"CREATE TABLE `t` (\n  `x` int\n);\n"
        + b"INSERT INTO `t` VALUES\n"
        + b",\n".join(rows)
        + b";\n"
        + b"INSERT INTO `u` VALUES\n(1),\n(2);\n"
        + b"INSERT INTO `t` VALUES\n"
        + b",\n".join(rows[:5000])
        + b";\n"
    )
    assert len(dump) > 1 << 20

    def counts(block: int) -> dict[str, int]:
        tally = MySQLDumpTally()
        for i in range(0, len(dump), block):
            tally(dump[i : i + block])
        return {k: v["rows"] for k, v in tally.result().items()}

    expected = {"t": 25_000, "u": 2}
    assert counts(len(dump)) == expected
    for block in (4095, 65536, 65537, 300_001, 1 << 20):
        assert counts(block) == expected, block


def test_definer_filter() -> None:
    chunks = [
        b"/*!50017 DEFINER=`root`@`local",
        b"host`*/ TRIGGER x\nCREATE DEFINER=`a``b`@`%` PROCEDURE p()\n",
    ]
    out = b"".join(definer_filter(chunks))
    assert b"DEFINER" not in out and b"TRIGGER x\n" in out and b"PROCEDURE p()" in out


def test_options_reject_unknown_and_password_args() -> None:
    with pytest.raises(ValueError):
        MySQLSource("d", {"databases": ["x"], "bogus": 1})
    with pytest.raises(ValueError):
        MySQLSource("d", {"databases": ["x"], "extra_dump_args": ["--password=foo"]})
    with pytest.raises(ValueError):
        MySQLSource("d", {"databases": ["x", "y"], "text_exports": ["t"]})
