"""The doctor's preflight reports when a database component backs up as an administrator (MySQL root or a
user with SUPER / CREATE USER; a PostgreSQL superuser) or as the application's own user (the user named
by the .env its password is read from), with the statements that create a read-only backup user; a
dedicated backup user passes. Users, roles and databases have generated names and are dropped afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safehold.secrets import SecretRef
from safehold.sources.base import Finding, SourceContext
from safehold.sources.checks import BACKUP_USER_CHECK, app_user_origin
from safehold.sources.mysql import MySQLSource
from safehold.sources.postgresql import PostgreSQLSource


def _user_finding(findings: list[Finding]) -> Finding:
    found = [f for f in findings if f.check == BACKUP_USER_CHECK]
    assert len(found) == 1, findings
    return found[0]


def test_mysql_root_is_reported(mysql_dbs: Any) -> None:
    db = mysql_dbs()
    f = _user_finding(MySQLSource("database", {"databases": [db], "user": "root"}).preflight(SourceContext()))
    assert not f.ok and "root" in f.message and "may change anything" in f.message
    assert any(line.startswith("CREATE USER 'safehold_backup'@") for line in f.lines)
    assert any(f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{db}`.*" in line for line in f.lines)


def test_mysql_app_user_from_its_env_is_reported_and_a_backup_user_passes(
    mysql_dbs: Any, mysql_users: Any, tmp_path: Path
) -> None:
    db = mysql_dbs()
    app, app_pw = mysql_users(f"GRANT ALL ON `{db}`.* TO {{user}}")
    env = tmp_path / ".env"
    env.write_text(f"APP_NAME=shop\nDB_CONNECTION=mysql\nDB_USERNAME={app}\nDB_PASSWORD={app_pw}\n")
    opts = {"databases": [db], "user": app, "password": {"file": str(env), "key": "DB_PASSWORD"}}
    f = _user_finding(MySQLSource("database", opts).preflight(SourceContext()))
    assert not f.ok
    assert f"application's own database user '{app}'@'127.0.0.1' (DB_USERNAME in {env})" in f.message
    assert app_pw not in f.message + " ".join(f.lines)
    backup, backup_pw = mysql_users(f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{db}`.* TO {{user}}")
    (tmp_path / "backup.pw").write_text(backup_pw)
    opts = {"databases": [db], "user": backup, "password": {"file": str(tmp_path / "backup.pw")}}
    assert _user_finding(MySQLSource("database", opts).preflight(SourceContext())).ok


def test_postgresql_superuser_and_plain_role(pg_roles: Any, pg_dbs: Any) -> None:
    """(pg_roles first: its roles are dropped after the databases that grant them something.)"""
    db = pg_dbs()
    f = _user_finding(PostgreSQLSource("pg", {"databases": [db]}).preflight(SourceContext()))  # postgres
    assert not f.ok and "a superuser" in f.message
    assert "CREATE ROLE safehold_backup LOGIN PASSWORD 'CHOOSE-A-PASSWORD';" in f.lines
    role = pg_roles(f'GRANT CONNECT ON DATABASE "{db}" TO {{role}}')
    f = _user_finding(PostgreSQLSource("pg", {"databases": [db], "user": role}).preflight(SourceContext()))
    assert f.ok, f


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("DB_USERNAME=shop\nDB_PASSWORD=x\n", "DB_PASSWORD", "DB_USERNAME"),
        ("MYSQL_USER=shop\nMYSQL_PASSWORD=x\n", "MYSQL_PASSWORD", "MYSQL_USER"),
        ("DB_USERNAME=other\nDB_PASSWORD=x\n", "DB_PASSWORD", None),
        # a hostile .env: no key names the user; values are compared, never run or interpolated
        ("DB_USERNAME=$(touch /tmp/pwned)\nDB_PASSWORD=x\n", "DB_PASSWORD", None),
    ],
)
def test_app_user_origin(tmp_path: Path, text: str, key: str, expected: str | None) -> None:
    env = tmp_path / ".env"
    env.write_text(text)
    got = app_user_origin(SecretRef(file=str(env), key=key), "shop")
    assert got == (f"{expected} in {env}" if expected else None)
    assert app_user_origin(SecretRef(env="X"), "shop") is None
    assert app_user_origin(SecretRef(file=str(tmp_path / "missing"), key=key), "shop") is None
