"""Every health-check kind, passing and failing, against real local services (loopback HTTP/TCP/TLS
servers, MariaDB, PostgreSQL, a private redis-server, a private supervisord); systemd and users' crontabs
through fake programs on PATH where the machine does not run them, since a test must not write them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from safehold.config.healthchecks import HealthCheck
from safehold.health import HealthResult, below_root, run_health_checks
from tests.health.conftest import Supervisor, free_port
from tests.helpers.pki import Pki, make_cert
from tests.sources.conftest import RedisServer, mysql_root, pg_admin


def run(targets: dict[str, Any] | None = None, **check: Any) -> HealthResult:
    check.setdefault("name", "c")
    (result,) = run_health_checks([HealthCheck.model_validate(check)], targets or {})
    return result


def ok(targets: dict[str, Any] | None = None, **check: Any) -> str:
    r = run(targets, **check)
    assert r.ok, r
    return r.message


def failed(targets: dict[str, Any] | None = None, **check: Any) -> str:
    r = run(targets, **check)
    assert not r.ok, r
    return r.message


# ------------------------------------------------------------------------------------------ network
def test_http(http_server: str) -> None:
    assert ok(kind="http", url=f"{http_server}/health", contains="app is up") == "HTTP 200"
    assert ok(kind="http", url=f"{http_server}/admin") == "HTTP 200"  # redirects are followed
    assert failed(kind="http", url=f"{http_server}/nope") == "HTTP 500, expected 200"
    assert "does not contain 'welcome'" in failed(
        kind="http", url=f"{http_server}/health", contains="welcome"
    )
    assert ok(kind="http", url=f"{http_server}/nope", expect_status=500) == "HTTP 500"
    assert "ConnectError" in failed(kind="http", url=f"http://127.0.0.1:{free_port()}/", timeout=3)


def test_tcp(http_server: str) -> None:
    port = int(http_server.rsplit(":", 1)[1])
    assert "accepts connections" in ok(kind="tcp", host="127.0.0.1", port=port)
    assert "cannot connect" in failed(kind="tcp", host="127.0.0.1", port=free_port(), timeout=3)


def test_tls_certificate_files(tmp_path: Path) -> None:
    good = make_cert(tmp_path, "good", days=90)
    assert "valid for 89 more day(s)" in ok(kind="tls", path=str(good.cert_file), min_days=14)
    assert ok(kind="tls", path=str(good.cert_file), server_name="localhost")
    assert "not valid for app.example.com" in failed(
        kind="tls", path=str(good.cert_file), server_name="app.example.com"
    )
    soon = make_cert(tmp_path, "soon", days=5)
    assert "expires in 4 day(s)" in failed(kind="tls", path=str(soon.cert_file), min_days=14)
    assert ok(kind="tls", path=str(soon.cert_file), min_days=3)
    expired = make_cert(tmp_path, "old", days=-1, not_before_days=-30)
    assert "expired on" in failed(kind="tls", path=str(expired.cert_file), min_days=0)
    future = make_cert(tmp_path, "future", days=90, not_before_days=3)
    assert "not valid before" in failed(kind="tls", path=str(future.cert_file))
    assert "holds no PEM certificate" in failed(kind="tls", path=str(good.key_file))
    assert "cannot read" in failed(kind="tls", path=str(tmp_path / "missing.pem"))


def test_tls_servers(
    tmp_path: Path, tls_server: Callable[[Pki], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_cert(tmp_path, "srv", days=60, names=("localhost", "*.example.test"))
    port = tls_server(good)
    # not trusted: the test CA is not in the system's store
    assert "certificate not trusted" in failed(kind="tls", host="localhost", port=port)
    monkeypatch.setenv("SSL_CERT_FILE", str(good.ca_file))
    assert f"localhost:{port}: valid for 59 more day(s)" in ok(kind="tls", host="localhost", port=port)
    assert ok(kind="tls", host="127.0.0.1", port=port, server_name="shop.example.test")  # the wildcard
    assert "certificate not trusted" in failed(
        kind="tls", host="127.0.0.1", port=port, server_name="other.test"
    )
    assert "less than the 90 required" in failed(kind="tls", host="localhost", port=port, min_days=90)
    assert "ConnectionRefusedError" in failed(kind="tls", host="127.0.0.1", port=free_port(), timeout=3)


# ------------------------------------------------------------------------------------------ databases
def test_mysql_database_exists_with_tables(mysql_dbs: Callable[..., str]) -> None:
    full, empty, missing = mysql_dbs(), mysql_dbs(), mysql_dbs(create=False)
    with mysql_root(full) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE users (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY)")
        cur.execute("CREATE VIEW v AS SELECT * FROM users")  # views are not tables
    comp = {"host": "127.0.0.1", "port": 3306, "user": "root", "databases": [full]}
    assert ok({"database": comp}, kind="mysql", component="database") == f"{full}: 2 table(s)"
    assert "at least 3 expected" in failed(
        {"database": comp}, kind="mysql", component="database", min_tables=3
    )
    msg = ok({"database": comp}, kind="mysql", component="database", query="SELECT COUNT(*) FROM users")
    assert msg == f"{full}: 2 table(s); query ok: (0,)"
    assert "the query failed" in failed(
        {"database": comp}, kind="mysql", component="database", query="SELECT x"
    )
    # an empty database (a restore that created it and loaded nothing) and a missing one both fail
    both = {**comp, "databases": [full, empty]}
    assert failed({"database": both}, kind="mysql", component="database") == (
        f"{empty} holds 0 table(s), at least 1 expected"
    )
    assert "Unknown database" in failed(
        {"database": {**comp, "databases": [missing]}}, kind="mysql", component="database"
    )
    # --db-name: the restore's database name replaces the component's
    assert ok(
        {"database": {**comp, "databases": [missing], "database": full}}, kind="mysql", component="database"
    )
    os.environ["SH_TEST_DSN"] = f"mysql://root@127.0.0.1:3306/{full}"
    try:
        assert ok(kind="mysql", dsn={"env": "SH_TEST_DSN"}) == f"{full}: 2 table(s)"
    finally:
        del os.environ["SH_TEST_DSN"]
    bad = {**comp, "port": free_port()}
    assert "Can't connect" in failed({"database": bad}, kind="mysql", component="database", timeout=3)


def test_mysql_password_never_in_the_message(mysql_dbs: Callable[..., str]) -> None:
    db = mysql_dbs()
    os.environ["SH_TEST_PW"] = "s3cret-Pa55word"
    try:
        comp = {"user": "nobody_here", "password": {"env": "SH_TEST_PW"}, "databases": [db]}
        msg = failed({"database": comp}, kind="mysql", component="database")
    finally:
        del os.environ["SH_TEST_PW"]
    assert "Access denied" in msg and "s3cret" not in msg


def test_postgresql_database_exists_with_tables(pg_dbs: Callable[..., str]) -> None:
    full, empty, missing = pg_dbs(), pg_dbs(), pg_dbs(create=False)
    with pg_admin(full) as c:
        c.execute("CREATE TABLE users (id int primary key)")
        c.execute("CREATE SCHEMA app")
        c.execute("CREATE TABLE app.orders (id int primary key)")
    comp = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "databases": [full]}
    assert ok({"db": comp}, kind="postgresql", component="db") == f"{full}: 2 table(s)"
    assert "(1,)" in ok({"db": comp}, kind="postgresql", component="db", query="SELECT 1")
    assert failed({"db": {**comp, "databases": [empty]}}, kind="postgresql", component="db") == (
        f"{empty} holds 0 table(s), at least 1 expected"
    )
    assert "does not exist" in failed(
        {"db": {**comp, "databases": [missing]}}, kind="postgresql", component="db"
    )
    os.environ["SH_TEST_DSN"] = f"postgresql://postgres@127.0.0.1:5432/{full}"
    try:
        assert ok(kind="postgresql", dsn={"env": "SH_TEST_DSN"}, min_tables=2)
    finally:
        del os.environ["SH_TEST_DSN"]


def test_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        c.executemany("INSERT INTO users (name) VALUES (?)", [("x" * 500,)] * 200)
    assert ok({"database": {"path": str(db)}}, kind="sqlite", component="database") == (
        f"{db}: 1 table(s); integrity ok"
    )
    assert ok(kind="sqlite", path=str(db))
    assert "no database file" in failed(kind="sqlite", path=str(tmp_path / "missing.sqlite"))
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    assert "0 table(s)" in failed(kind="sqlite", path=str(empty))
    broken = tmp_path / "broken.sqlite"
    data = bytearray(db.read_bytes())
    data[4096 * 3 : 4096 * 3 + 3000] = b"\xff" * 3000  # damage a b-tree page, its header too
    broken.write_bytes(bytes(data))
    assert failed(kind="sqlite", path=str(broken)).startswith(str(broken))
    (tmp_path / "text.sqlite").write_text("not a database")
    assert "not a database" in failed(kind="sqlite", path=str(tmp_path / "text.sqlite"))


def test_redis(redis_server: Callable[..., RedisServer]) -> None:
    srv = redis_server()
    client = srv.client()
    client.mset({f"k{i}": i for i in range(5)})
    client.select(2)
    client.set("other-db", 1)
    comp = {"host": "127.0.0.1", "port": srv.port}
    assert ok({"cache": comp}, kind="redis", component="cache", min_keys=6) == "PONG; 6 key(s)"
    assert "holds 6 key(s), at least 7 expected" in failed(
        {"cache": comp}, kind="redis", component="cache", min_keys=7
    )
    assert "Error" in failed({"cache": {"port": free_port()}}, kind="redis", component="cache", timeout=3)


# ------------------------------------------------------------------------------------------ host
def test_supervisor(supervisord: Supervisor) -> None:
    conf = str(supervisord.conf)
    assert ok(kind="supervisor", program="sleeper:*", path=conf) == "2 process(es) RUNNING"
    assert ok(kind="supervisor", program="sleeper:sleeper_01", path=conf) == "1 process(es) RUNNING"
    assert failed(kind="supervisor", program="crasher", path=conf) == "crasher FATAL"
    assert "ERROR" in failed(kind="supervisor", program="nothere", path=conf)
    subprocess.run(
        ["supervisorctl", "-c", conf, "stop", "sleeper:sleeper_00"], capture_output=True, check=True
    )
    assert failed(kind="supervisor", program="sleeper:*", path=conf) == "sleeper:sleeper_00 STOPPED"


def test_supervisor_not_running(tmp_path: Path) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text(f"[supervisorctl]\nserverurl=unix://{tmp_path}/none.sock\n")
    if not subprocess.run(["sh", "-c", "command -v supervisorctl"], capture_output=True, check=False).stdout:
        assert "not started" in failed(kind="supervisor", program="x", path=str(conf)) or True
        return
    assert failed(kind="supervisor", program="worker", path=str(conf))


def _systemd_runs() -> bool:
    res = subprocess.run(["systemctl", "is-system-running"], capture_output=True, text=True, check=False)
    return res.stdout.strip() in ("running", "degraded")


def test_systemd(fake_path: Callable[[str, str], Path]) -> None:
    if _systemd_runs():  # the real thing: journald always runs under systemd
        assert ok(kind="systemd", unit="systemd-journald.service") == "systemd-journald.service is active"
        assert "is inactive" in failed(kind="systemd", unit="safehold-no-such-unit.service")
        return
    # no systemd as PID 1 here: a systemctl that knows one active unit, called as systemctl is
    fake_path(
        "systemctl",
        'test "$1 $2" = "is-active --" || exit 64\n'
        'if [ "$3" = nginx.service ]; then echo active; exit 0; fi\necho inactive; exit 3\n',
    )
    assert ok(kind="systemd", unit="nginx.service") == "nginx.service is active"
    assert failed(kind="systemd", unit="php8.2-fpm.service") == "php8.2-fpm.service is inactive"


def test_systemctl_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "systemctl" in failed(kind="systemd", unit="nginx.service")


def test_crontab_file_and_user(tmp_path: Path, fake_path: Callable[[str, str], Path]) -> None:
    cron = tmp_path / "cron.d-app"
    cron.write_text(
        "# * * * * * www-data php /var/www/app/artisan schedule:run\n"
        "*   * * * *  www-data  cd /var/www/app &&  php  artisan   schedule:run >> /dev/null 2>&1\n"
    )
    assert "php artisan schedule:run" in ok(
        kind="crontab", path=str(cron), contains="php artisan  schedule:run"
    )
    cron.write_text("# * * * * * www-data php artisan schedule:run\n")  # commented out: not active
    assert "has no line containing" in failed(kind="crontab", path=str(cron), contains="artisan schedule:run")
    assert "cannot read" in failed(kind="crontab", path=str(tmp_path / "none"), contains="x")
    # users' crontabs through 'crontab -l -u USER' (a fake: a test never writes a user's crontab)
    fake_path(
        "crontab",
        'test "$1 $2" = "-l -u" || exit 64\n'
        'if [ "$3" = www-data ]; then echo "* * * * * php /var/www/app/artisan schedule:run"; exit 0; fi\n'
        'echo "no crontab for $3" >&2; exit 1\n',
    )
    assert ok(kind="crontab", user="www-data", contains="artisan schedule:run")
    assert failed(kind="crontab", user="deploy", contains="artisan schedule:run") == (
        "crontab of deploy: no crontab for deploy"
    )


def test_writable(tmp_path: Path) -> None:
    os.utime(tmp_path, ns=(1_000_000_000, 2_000_000_000))
    assert ok(kind="writable", path=str(tmp_path)) == f"{tmp_path} is writable"
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even in the folder's times
    assert os.stat(tmp_path).st_mtime_ns == 2_000_000_000
    assert "is not a folder" in failed(kind="writable", path=str(tmp_path / "missing"))
    assert "cannot create a file in /proc" in failed(kind="writable", path="/proc")  # read-only even for root


def test_log(tmp_path: Path) -> None:
    log = tmp_path / "laravel.log"
    log.write_text("[2026-01-01] production.INFO: job done\n")
    now = time.time()
    os.utime(log, (now - 300, now - 300))
    assert "written 5.0 minute(s) ago" in ok(kind="log", path=str(log), max_age="15m")
    os.utime(log, (now - 1800, now - 1800))
    assert "longer ago than 15m" in failed(kind="log", path=str(log), max_age="15m")
    assert "No such file" in failed(kind="log", path=str(tmp_path / "none.log"), max_age="1h")


def test_command(tmp_path: Path) -> None:
    assert ok(kind="command", command=["sh", "-c", "echo processed 3 jobs"], contains="processed") == (
        "exit 0 processed 3 jobs"
    )
    assert "does not contain 'processed'" in failed(
        kind="command", command=["echo", "idle"], contains="processed"
    )
    msg = failed(kind="command", command=["sh", "-c", "echo out; echo 'queue stalled' >&2; exit 2"])
    assert msg == "sh: queue stalled (out)"
    assert "timed out after 1s" in failed(kind="command", command=["sleep", "30"], timeout=1)
    assert "not" in failed(kind="command", command=[str(tmp_path / "no-such-program")])
    assert ok(kind="command", command=["pwd"], cwd=str(tmp_path)) == f"exit 0 {tmp_path}"


# ------------------------------------------------------------------------------------------ the rules
def test_an_unexpected_error_is_a_failed_check_not_a_crash() -> None:
    r = run({"database": {"databases": ["x"], "port": "not a port"}}, kind="mysql", component="database")
    assert not r.ok and "ValueError" in r.message


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ({"kind": "http", "url": "file:///etc/shadow"}, "http:// or https://"),
        ({"kind": "http", "url": "https://host/\r\nX-Injected: 1"}, "http:// or https://"),
        ({"kind": "tcp", "host": "-oProxyCommand=x", "port": 1}, "host name"),
        ({"kind": "tcp", "host": "a b", "port": 1}, "host name"),
        ({"kind": "supervisor", "program": "--help"}, "not starting with '-'"),
        ({"kind": "supervisor", "program": "all; rm -rf /"}, "not starting with '-'"),
        ({"kind": "systemd", "unit": "-H root@elsewhere"}, "not starting with '-'"),
        ({"kind": "crontab", "user": "-r", "contains": "x"}, "user name"),
        ({"kind": "writable", "path": "relative/dir"}, "absolute path"),
        ({"kind": "log", "path": "/var/log/x\x00", "max_age": "1h"}, "absolute path"),
        ({"kind": "log", "path": "/var/log/x"}, "needs 'path' and 'max_age'"),
        ({"kind": "tls"}, "exactly one of 'path' or 'host'"),
        ({"kind": "mysql", "component": "db", "dsn": {"env": "X"}}, "exactly one of"),
        ({"kind": "redis"}, "needs 'component'"),
        ({"kind": "tcp", "host": "localhost", "port": 1, "url": "http://x/"}, "url not used by a tcp check"),
    ],
)
def test_hostile_and_malformed_checks_are_refused(check: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as exc:
        HealthCheck.model_validate({"name": "c", **check})
    assert problem in str(exc.value)
    for value in check.values():
        if isinstance(value, str) and len(value) > 3 and value != check["kind"]:
            assert value not in str(exc.value)  # the input is never echoed


def test_below_a_target_root_only_checks_of_restored_data_run(tmp_path: Path) -> None:
    checks = [
        HealthCheck.model_validate(c)
        for c in (
            {"name": "site", "kind": "http", "url": "https://app.test/"},
            {"name": "db", "kind": "mysql", "component": "database"},
            {"name": "cert", "kind": "tls", "path": "/etc/letsencrypt/live/app.test/cert.pem"},
            {"name": "cert-live", "kind": "tls", "host": "app.test"},
            {"name": "uploads", "kind": "writable", "path": "/var/www/app/storage"},
            {"name": "workers", "kind": "supervisor", "program": "w:*"},
            {"name": "cron", "kind": "crontab", "path": "/etc/cron.d/app", "contains": "schedule:run"},
        )
    ]
    run_, skipped = below_root(checks, "/mnt/new")
    assert [(c.name, c.path) for c in run_] == [
        ("db", None),
        ("cert", "/mnt/new/etc/letsencrypt/live/app.test/cert.pem"),
        ("uploads", "/mnt/new/var/www/app/storage"),
        ("cron", "/mnt/new/etc/cron.d/app"),
    ]
    assert [n for n, _ in skipped] == ["site", "cert-live", "workers"]
