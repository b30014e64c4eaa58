"""The mysql privilege check fails closed exactly when the dump would lose something: the app's own user
(ALL on its database, owning its routines) passes without SELECT on mysql.proc; a routine defined by
another user, whose definition information_schema hides, fails naming it; a database without routines
needs nothing for them. Users and databases have generated names and are dropped afterwards."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.dbstats import MySQLDumpTally
from safehold.sources.mysql import MySQLSource, check_mysql_privileges
from tests.sources.conftest import MYSQL, mysql_root
from tests.sources.memcomponent import MemoryComponent


def _as(user: str, password: str, db: str) -> Any:
    return pymysql.connect(
        host=MYSQL["host"], port=MYSQL["port"], user=user, password=password, database=db, autocommit=True
    )


@pytest.fixture
def app_db(mysql_dbs: Any, mysql_users: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A database and its application user (ALL on it, nothing else) that created its own schema."""
    db = mysql_dbs()
    user, password = mysql_users(f"GRANT ALL ON `{db}`.* TO {{user}}")
    monkeypatch.setenv("SH_APP_PW", password)
    with _as(user, password, db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, total INT)")
        cur.execute("INSERT INTO orders VALUES (1, 10), (2, 20)")
        cur.execute("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))")
    opts = {"databases": [db], "user": user, "password": {"env": "SH_APP_PW"}}
    return {"db": db, "user": user, "password": password, "opts": opts}


def test_app_user_owning_its_routines_passes(app_db: dict[str, Any], mem: MemoryComponent) -> None:
    db, user = app_db["db"], app_db["user"]
    with _as(user, app_db["password"], db) as c, c.cursor() as cur:
        cur.execute("CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2")
        cur.execute("CREATE PROCEDURE totals(OUT n INT) BEGIN SELECT SUM(total) INTO n FROM orders; END")
        cur.execute(
            "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES ('x')"
        )
    assert check_mysql_privileges(app_db["opts"]) == []
    MySQLSource("database", app_db["opts"]).backup(mem, SourceContext())
    dump = mem.files[f"{db}/full_dump.sql"]
    for needle in (b"FUNCTION `twice`", b"PROCEDURE `totals`", b"TRIGGER"):
        assert needle in dump


def test_no_routines_passes(app_db: dict[str, Any], mem: MemoryComponent) -> None:
    assert check_mysql_privileges(app_db["opts"]) == []
    MySQLSource("database", app_db["opts"]).backup(mem, SourceContext())
    assert b"CREATE TABLE `orders`" in mem.files[f"{app_db['db']}/full_dump.sql"]


def test_a_routine_defined_by_another_user_fails_naming_it(
    app_db: dict[str, Any], mysql_users: Any, mem: MemoryComponent
) -> None:
    db = app_db["db"]
    other, _pw = mysql_users(f"GRANT ALL ON `{db}`.* TO {{user}}")
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute(f"CREATE DEFINER='{other}'@'127.0.0.1' FUNCTION foreign_fn() RETURNS INT RETURN 7")
        cur.execute(f"CREATE DEFINER='{app_db['user']}'@'127.0.0.1' PROCEDURE own_proc() SELECT 1")
    report = check_mysql_privileges(app_db["opts"])
    named = f"FUNCTION `{db}`.`foreign_fn` (definer {other}@127.0.0.1)"
    assert any(named in line for line in report), report
    assert not any("own_proc" in line for line in report)
    assert f"GRANT SELECT ON mysql.proc TO '{app_db['user']}'@'127.0.0.1';" in report
    with pytest.raises(SourceError, match="foreign_fn") as exc:
        MySQLSource("database", app_db["opts"]).backup(mem, SourceContext())
    assert "cannot read the definition" in exc.value.message and "mysql.proc" in exc.value.hint
    # the named fix really is enough: the dump then holds the routine
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"GRANT SELECT ON mysql.proc TO '{app_db['user']}'@'127.0.0.1'")
    assert check_mysql_privileges(app_db["opts"]) == []
    done = MemoryComponent()
    MySQLSource("database", app_db["opts"]).backup(done, SourceContext())
    assert b"FUNCTION `foreign_fn`" in done.files[f"{db}/full_dump.sql"]


def test_a_user_that_cannot_list_routines_fails_closed(
    app_db: dict[str, Any], mysql_users: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SELECT only: information_schema shows it no routine at all, so none can be ruled out."""
    db = app_db["db"]
    reader, pw = mysql_users(f"GRANT SELECT, TRIGGER, EVENT ON `{db}`.* TO {{user}}")
    monkeypatch.setenv("SH_READER_PW", pw)
    opts = {"databases": [db], "user": reader, "password": {"env": "SH_READER_PW"}}
    report = check_mysql_privileges(opts)
    assert any(f"cannot list the routines of {db}" in line for line in report), report


def test_the_dumps_own_insufficient_privileges_notes_fail() -> None:
    """mysqldump notes an object it could not read inside the dump and exits 0: that is a failure."""
    tally = MySQLDumpTally()
    tally(b"CREATE TABLE `t` (\n  `id` int\n);\n-- insufficient privileges to SHOW CREATE PROCEDURE `p`\n")
    tally(b"-- Dump completed\n")
    assert tally.insufficient == ["insufficient privileges to SHOW CREATE PROCEDURE `p`"]
    from safehold.sources.mysql.source import _insufficient

    reason = _insufficient(tally.insufficient)
    assert reason is not None and "SHOW CREATE PROCEDURE `p`" in reason
