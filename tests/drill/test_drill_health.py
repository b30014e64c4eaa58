"""Health checks in a drill: the ones that say something about a restore run against the sandbox (the
scratch databases, the scratch redis-server, the restored files), the others are skipped with a reason;
a failing check fails the drill with exit 4. Restored symlinks are followed to restored copies only.
And the scratch database server: its user and password (a secret reference) are used as configured, and
a scratch server the drill cannot use is reported as such, with a hint, never as a broken dump."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from tests.drill.conftest import DrillServer
from tests.helpers.pki import make_cert as health_pki
from tests.helpers.slowproxy import slow_proxy
from tests.sources.conftest import mysql_root


def make_cert(path: Path, name: str, days: int) -> None:
    """A PEM certificate for ``name`` (signed by a throwaway CA) valid until ``days`` from now."""
    pki = health_pki(
        path.parent / f".pki-{path.stem}", name, days=days, not_before_days=min(-1, days - 1), names=(name,)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pki.cert_file.read_bytes())
    shutil.rmtree(pki.cert_file.parent)


def _health(r: Any) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in r.json()["health"]}


def test_health_checks_run_against_the_sandbox(drill_server: DrillServer) -> None:
    d = drill_server
    public = d.s.app / "storage/app/public"
    outside = d.s.tmp / "outside"  # a live folder no component holds
    outside.mkdir()
    (public / "escape").symlink_to(outside)  # hostile: an absolute link out of the restored tree
    (public / "up").symlink_to("../../../../../../../../../../../../" + str(outside).lstrip("/"))
    (public / "logs").symlink_to("../../logs")  # stays inside: followed to the restored copy
    (d.s.app / "storage/logs").mkdir(exist_ok=True)
    make_cert(d.s.app / "storage/certs/site.pem", "app.example.test", days=200)
    make_cert(d.s.app / "storage/certs/soon.pem", "app.example.test", days=5)
    (d.s.app / "storage/certs/current.pem").symlink_to("site.pem")
    before = os.stat(outside)

    def checks(data: dict[str, Any]) -> None:
        storage = str(d.s.app / "storage")
        data["health_checks"] += [
            {"name": "many-tables", "kind": "mysql", "component": "database", "min_tables": 99},
            {"name": "billing", "kind": "postgresql", "component": "billing", "query": "SELECT count(*) FROM invoices"},
            {"name": "jobs", "kind": "sqlite", "component": "queue-db"},
            {"name": "redis-keys", "kind": "redis", "component": "redis", "min_keys": 1000},
            {"name": "live-db", "kind": "mysql", "dsn": {"env": "LIVE_DB_URL"}},
            {"name": "escape", "kind": "writable", "path": f"{storage}/app/public/escape"},
            {"name": "up", "kind": "writable", "path": f"{storage}/app/public/up"},
            {"name": "logs", "kind": "writable", "path": f"{storage}/app/public/logs"},
            {"name": "cert", "kind": "tls", "path": f"{storage}/certs/current.pem", "min_days": 30},
            {"name": "cert-soon", "kind": "tls", "path": f"{storage}/certs/soon.pem", "min_days": 14},
            {"name": "gone", "kind": "writable", "path": "/nonexistent/folder"},
            {"name": "log", "kind": "log", "path": f"{storage}/logs/laravel.log", "max_age": "5m"},
        ]  # fmt: skip

    d.edit_config(checks)
    d.backup()
    r = d.drill()
    assert r.code == 4, r  # every component passed, health checks failed
    assert all(c["ok"] for c in r.json()["components"]), r.json()["components"]
    h = _health(r)
    ok = {n for n, c in h.items() if c["ok"] and not c["skipped"]}
    failed = {n for n, c in h.items() if not c["ok"]}
    skipped = {n: c["message"] for n, c in h.items() if c["skipped"]}
    assert ok == {"uploads-writable", "database", "redis", "scheduler", "billing", "jobs", "logs", "cert"}, h
    assert failed == {"many-tables", "redis-keys", "escape", "up", "cert-soon"}, h
    assert set(skipped) == {"queue-app-worker", "website", "certificate", "live-db", "log", "gone"}, h
    # against the scratch copies, not the live databases
    assert (
        h["many-tables"]["message"].startswith("safehold_drill_")
        and "at least 99" in h["many-tables"]["message"]
    )
    assert h["database"]["message"].startswith("safehold_drill_"), h["database"]
    assert "query ok: (250,)" in h["billing"]["message"], h["billing"]
    assert "holds 12 key(s), at least 1000 expected" in h["redis-keys"]["message"], h["redis-keys"]
    assert "copy.sqlite3" in h["jobs"]["message"] and "1 table(s)" in h["jobs"]["message"], h["jobs"]
    # symlinks: followed to restored copies only
    assert f"{outside} is held by no component of the drilled profile" in h["escape"]["message"], h["escape"]
    assert f"{outside} is held by no component" in h["up"]["message"], h["up"]
    assert os.stat(outside).st_ctime_ns == before.st_ctime_ns and list(outside.iterdir()) == []
    assert "(restored) is writable" in h["logs"]["message"], h["logs"]
    assert "more day(s)" in h["cert"]["message"] and "(restored)" in h["cert"]["message"], h["cert"]
    assert "expires in 4 day(s)" in h["cert-soon"]["message"], h["cert-soon"]
    assert skipped["gone"] == "/nonexistent/folder is held by no component of the drilled profile"
    assert skipped["website"] == "requests the live site over HTTP"
    assert skipped["live-db"].startswith("names a live database by URL")
    assert "crontabs/www-data (restored): * * * * * cd" in h["scheduler"]["message"], h["scheduler"]
    assert "error: drill: every component restored and verified; health check(s) failed" in r.err, r.err
    assert "many-tables" in r.err
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []

    # text: one line per check, under the components
    t = d.cli("--config", str(d.s.config), "drill")
    assert t.code == 4, t
    lines = t.out.splitlines()
    at = lines.index("health checks against the sandbox:")
    assert any(x.startswith("FAILED  many-tables (mysql)") for x in lines[at:]), t.out
    assert any(x.startswith("skipped website (http)") for x in lines[at:]), t.out
    assert any(x.startswith("ok      jobs (sqlite)") for x in lines[at:]), t.out

    # a profile without the component: its checks are skipped, the drill passes
    d.backup("quick")
    q = d.drill("--profile", "quick")
    hq = _health(q)
    assert (
        hq["redis-keys"]["skipped"] and "not part of the drilled profile quick" in hq["redis-keys"]["message"]
    )


def _scratch_user() -> tuple[str, str]:
    user, password = f"sh_drill_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    with mysql_root() as c, c.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `safehold\\_drill\\_%`.* TO '{user}'@'{host}'")
            cur.execute(f"GRANT SUPER ON *.* TO '{user}'@'{host}'")  # the dump's triggers name a DEFINER
    return user, password


def _drop_user(user: str) -> None:
    with mysql_root() as c, c.cursor() as cur:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def test_the_scratch_server_password_and_clear_failures(drill_server: DrillServer) -> None:
    d = drill_server
    user, password = _scratch_user()
    try:
        d.edit_config(
            lambda data: data["drill"].update(
                mysql_scratch_user=user, mysql_scratch_password={"env": "DRILL_SCRATCH_PW"}
            )
        )
        d.backup("quick")

        def drill(env: dict[str, str]) -> Any:
            return d.drill("--profile", "quick", env=env)

        # the reference cannot be resolved: said so, with what to configure
        r = drill({})
        assert r.code == 1, r
        step = {c["name"]: c for c in r.json()["components"]}["database"]
        assert not step["ok"] and step["message"].startswith(
            f"database: cannot use the drill's scratch server ({user}@127.0.0.1:3306 with password from env:DRILL_SCRATCH_PW)"
        ), step
        assert "DRILL_SCRATCH_PW" in step["message"] and "the dump was not tested" in step["message"]
        assert "mysql_scratch_password" in step["hint"] and "mysql_scratch_password" in r.err, r.err
        # a wrong password: the server's refusal, never the value
        r = drill({"DRILL_SCRATCH_PW": "wrong-" + password})
        step = {c["name"]: c for c in r.json()["components"]}["database"]
        assert r.code == 1 and "Access denied" in step["message"], step
        assert password not in r.out + r.err
        # the right one: the dump loads into a scratch database of that user
        r = drill({"DRILL_SCRATCH_PW": password})
        assert r.code == 0, r.out
        assert password not in r.out + r.err
        # no scratch password and another user than the component's: no password (not the component's)
        d.edit_config(lambda data: data["drill"].pop("mysql_scratch_password"))
        r = drill({})
        step = {c["name"]: c for c in r.json()["components"]}["database"]
        assert r.code == 1 and f"({user}@127.0.0.1:3306 with no password (none configured" in step["message"]
        assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []
    finally:
        _drop_user(user)


def test_a_broken_nginx_configuration_and_an_expired_certificate_fail_the_drill(
    drill_server: DrillServer,
) -> None:
    d = drill_server
    site = d.s.root / "etc/nginx/sites-available/app"
    site.write_text(
        site.read_text().replace("    index index.php;\n", "    index index.php;\n    bogus_directive on;\n")
    )
    archive = d.s.root / "etc/letsencrypt/archive/app.example.test"
    make_cert(archive / "cert2.pem", "app.example.test", days=-1)  # the live certificate expired yesterday
    d.backup()
    r = d.drill()
    assert r.code == 1, r
    steps = {c["name"]: c for c in r.json()["components"]}
    assert steps["system"]["ok"] and steps["tls"]["ok"]  # the files restored as stored
    nginx, tls = steps["system:parsed"], steps["tls:parsed"]
    assert (
        not nginx["ok"]
        and 'unknown directive "bogus_directive" in /etc/nginx/sites-enabled/app:6' in nginx["message"]
    )
    assert not tls["ok"] and "certificate /etc/letsencrypt/live/app.example.test/cert.pem" in tls["message"]
    assert "expired on" in tls["message"], tls
    assert "error: drill failed: system:parsed, tls:parsed" in r.err, r.err
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []


def test_db_host_and_port_reach_the_scratch_server_and_a_slow_drill_breaches_the_rto(
    drill_server: DrillServer,
) -> None:
    d = drill_server
    d.backup("quick")
    # --db-port names the scratch server: a port nothing listens on is that server, not a broken dump
    r = d.drill("--profile", "quick", "--db-host", "127.0.0.1", "--db-port", "1")
    assert r.code == 1, r
    step = {c["name"]: c for c in r.json()["components"]}["database"]
    assert step["message"].startswith("database: cannot use the drill's scratch server (root@127.0.0.1:1 "), (
        step
    )
    assert "the dump was not tested" in step["message"] and step["hint"], step
    r = d.drill("--profile", "quick", "--db-host", "127.0.0.1", "--db-port", "3306")
    assert r.code == 0, r.out
    # every component passes, but slower than the RTO: exit 5, recorded, and status says so. The scratch
    # server is reached through a proxy that holds each connection 1.2 s (a slow network), so the drill
    # takes longer than 1 s on any machine
    d.edit_config(lambda data: data.setdefault("objectives", {}).update(rto="1s"))
    with slow_proxy(("127.0.0.1", 3306), delay=1.2) as proxy:
        r = d.drill("--profile", "quick", "--db-host", "127.0.0.1", "--db-port", str(proxy.port))
    assert proxy.connections >= 1, proxy
    assert r.code == 5, r
    out = r.json()
    assert out["ok"] is True and out["within_rto"] is False and out["rto_seconds"] == 1, out
    assert out["seconds"] >= 1.2, out
    assert "longer than the RTO of 1s" in r.err, r.err
    d.edit_config(lambda data: data["drill"].update(profile="quick"))
    st = d.cli("--config", str(d.s.config), "--json", "status")
    (rto,) = [o for o in st.json()["objectives"] if o["name"] == "rto"]
    assert st.code == 5 and rto["ok"] is False, rto
    assert d.scratch_databases() == [] and list(d.sandbox.iterdir()) == []
