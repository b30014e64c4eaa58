"""``safehold verify-system``: one line per configured check, exit 4 when any fails, --json, --check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Cli
from tests.sources.conftest import mysql_root


def _config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "safehold.toml"
    p.write_text(f'version = 1\n[repository]\nurl = "{tmp_path}/repo"\n{body}')
    return p


def test_verify_system(tmp_path: Path, cli: Cli, http_server: str, mysql_dbs: Callable[..., str]) -> None:
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE jobs (id INT PRIMARY KEY)")
    conf = _config(
        tmp_path,
        f"""
[components.database]
kind = "mysql"
databases = ["{db}"]
[[health_checks]]
name = "website"
kind = "http"
url = "{http_server}/health"
contains = "app is up"
[[health_checks]]
name = "database"
kind = "mysql"
component = "database"
[[health_checks]]
name = "queue"
kind = "command"
command = ["sh", "-c", "echo 'last job 45 minutes ago'; exit 1"]
""",
    )
    r = cli("verify-system", "--config", str(conf))
    assert r.code == 4, r
    lines = r.out.splitlines()
    assert lines[:3] == [
        "website:  ok (HTTP 200)",
        f"database: ok ({db}: 1 table(s))",
        "queue:    FAILED (sh: exited with status 1 (last job 45 minutes ago))",
    ], r
    assert "3 check(s), 1 failed" in r.out
    assert "error: health check queue failed" in r.err

    r = cli("--json", "verify-system", "--config", str(conf))
    doc = r.json()
    assert r.code == 4 and doc["ok"] is False
    assert [(c["name"], c["kind"], c["ok"]) for c in doc["checks"]] == [
        ("website", "http", True), ("database", "mysql", True), ("queue", "command", False),
    ]  # fmt: skip

    r = cli("verify-system", "--check", "website", "--check", "database", "--config", str(conf))
    assert r.code == 0 and "2 check(s), 0 failed" in r.out, r
    r = cli("verify-system", "--check", "nope", "--config", str(conf))
    assert r.code == 2 and "no health check named nope" in r.err and "website, database, queue" in r.err


def test_verify_system_without_checks(tmp_path: Path, cli: Cli) -> None:
    r = cli("verify-system", "--config", str(_config(tmp_path, "")))
    assert r.code == 2 and "has no health checks" in r.err and "init --preset" in r.err, r


def test_duplicate_check_names_are_refused(tmp_path: Path, cli: Cli) -> None:
    check = '[[health_checks]]\nname = "x"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 1\n'
    r = cli("verify-system", "--config", str(_config(tmp_path, check + check)))
    assert (
        r.code == 2 and "health_checks[1].name" in r.err and "another health check is named 'x'" in r.err
    ), r
