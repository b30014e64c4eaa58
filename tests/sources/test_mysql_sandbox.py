"""MariaDB's sandbox first line (``/*M!999999\\- enable the sandbox mode */``), which MySQL's client
rejects: kept in the repository, left out where the dump goes to a MySQL client (a restore whose client
is MySQL's, here a stand-in that rejects the line as MySQL 8's client does and passes the rest to the
real MariaDB client)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from safehold.sources.base import SourceContext
from safehold.sources.mysql import MySQLSource
from safehold.sources.mysql.sandbox import is_mariadb_client, without_sandbox_line
from tests.sources.conftest import mysql_root
from tests.sources.memcomponent import MemoryComponent

LINE = b"/*M!999999\\- enable the sandbox mode */ \n"
REST = b"-- MariaDB dump 10.19\n\nCREATE TABLE `t` (id int);\n"


@pytest.mark.parametrize("cut", [1, 5, 20, len(LINE) - 1, len(LINE), len(LINE) + 3])
def test_the_first_line_is_left_out_wherever_the_chunks_are_cut(cut: int) -> None:
    data = LINE + REST
    assert b"".join(without_sandbox_line([data[:cut], data[cut:]])) == REST
    assert b"".join(without_sandbox_line([bytes([b]) for b in data])) == REST


def test_everything_else_is_unchanged() -> None:
    for data in (REST, b"", REST + LINE, b"/*M!999999\\- enable the sandbox mode */ and more\n" + REST):
        assert b"".join(without_sandbox_line([data])) == data
    assert b"".join(without_sandbox_line([LINE.rstrip(b" \n") + b"\n", REST])) == REST


def test_client_kind() -> None:
    assert is_mariadb_client("mysql  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)")
    assert not is_mariadb_client("mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)")


def test_restore_through_a_mysql_client(mysql_dbs: Any, mem: MemoryComponent, tmp_path: Path) -> None:
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    src = MySQLSource("database", {"databases": [db], "user": "root"})
    src.backup(mem, SourceContext())
    dump = mem.files[f"{db}/full_dump.sql"]
    if not dump.startswith(b"/*M!999999"):
        pytest.skip("this mariadb-dump writes no sandbox line")
    real = shutil.which("mariadb")
    assert real
    fake = tmp_path / "mysql"
    seen = tmp_path / "first-line"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "mysql  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"; '
        "exit 0; fi\n"
        f"tmp={tmp_path}/in.sql; cat > $tmp; head -n 1 $tmp > {seen}\n"
        "if head -n 1 $tmp | grep -q 'sandbox mode'; then "
        "echo \"ERROR at line 1: Unknown command '\\\\-'.\" >&2; exit 1; fi\n"
        f'exec {real} "$@" < $tmp\n'
    )
    fake.chmod(0o755)
    target = mysql_dbs(create=False)
    report = MySQLSource("database", {"databases": [db], "user": "root", "client_tool": str(fake)}).restore(
        mem, SourceContext(options={"database": target})
    )
    assert report.details[target]["problems"] == []
    assert b"sandbox" not in seen.read_bytes()
    with mysql_root(target) as c, c.cursor() as cur:
        cur.execute("SELECT v FROM t ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == ["one", "two"]
