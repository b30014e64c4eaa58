"""Fixtures of the drill tests: the whole-server fixture of the e2e tests (files, MariaDB, Redis, git,
system files, the SaaS fakes) plus a SQLite file and a PostgreSQL database, configured with
``init --preset laravel`` and extra components, the drill's sandbox in the test's folder."""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.e2e.conftest import Cli, LaravelServer, build_laravel_server, cli  # noqa: F401 - fixtures
from tests.sources.conftest import mysql_dbs, mysql_root, pg_admin, pg_dbs, redis_server  # noqa: F401 - fixtures


@dataclass
class DrillServer:
    s: LaravelServer
    cli: Cli
    sandbox: Path
    pg: str
    sqlite: Path
    #: the ids of this test's drills (their scratch databases are named safehold_drill_<id>_...)
    ids: set[str] = field(default_factory=set)

    def drill(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Any:
        r = self.cli("--config", str(self.s.config), "--json", "drill", *args, timeout=timeout, env=env)
        self.note(r)
        return r

    def note(self, r: Any) -> None:
        """Remember the drill ids of a drill's JSON output."""
        try:
            out = r.json()
        except ValueError:
            return
        for detail in (out.get("details") or {}).values():
            for name in detail.get("scratch_databases", []) if isinstance(detail, dict) else []:
                self.ids.add(str(name).split("_")[2])

    def scratch_databases(self) -> list[str]:
        """The scratch databases of this test's drills (other tests' drills may run at the same time on
        the same servers: never theirs)."""
        ids = self.ids | {p.name.removeprefix("drill-") for p in self.sandbox.glob("drill-*")}
        return [n for n in scratch_databases() if n.split("_")[2] in ids]

    def edit_config(self, change: Callable[[dict[str, Any]], None]) -> None:
        data = tomllib.loads(self.s.config.read_text())
        change(data)
        self.s.config.write_text(tomli_w.dumps(data))

    def backup(self, profile: str = "full") -> Any:
        r = self.cli("--config", str(self.s.config), "--json", "backup", "--profile", profile)
        assert r.code in (0, 1), r
        return r.json()


def scratch_databases() -> list[str]:
    with mysql_root() as c, c.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'safehold\\_drill\\_%'")
        mysql = [r[0] for r in cur.fetchall()]
    with pg_admin() as c:
        pg = [
            r[0]
            for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'safehold\\_drill\\_%'")
        ]
    return mysql + pg


@pytest.fixture
def laravel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaravelServer]:
    """A server per drill test (not per module as in tests/e2e): every drill test adds tables and
    components, initialises a repository and some damage the server or its snapshots."""
    with build_laravel_server(tmp_path_factory.mktemp("e2e")) as s:
        yield s


@pytest.fixture
def drill_server(
    laravel_server: LaravelServer,
    cli: Cli,  # noqa: F811
    pg_dbs: Callable[..., str],  # noqa: F811
    tmp_path: Path,
) -> Iterator[DrillServer]:
    s = laravel_server
    pg = pg_dbs()
    with pg_admin(pg) as c:
        c.execute("CREATE TABLE invoices (id serial primary key, total numeric(10,2), note text)")
        c.execute(
            "INSERT INTO invoices (total, note) SELECT g * 1.5, 'n' || g FROM generate_series(1, 250) g"
        )
        c.execute("CREATE VIEW big_invoices AS SELECT * FROM invoices WHERE total > 100")
    db = s.app / "database" / "app.sqlite"
    db.parent.mkdir(exist_ok=True)
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
        c.executemany("INSERT INTO jobs (payload) VALUES (?)", [(f"job {i}",) for i in range(120)])
    c.close()
    r = cli(
        "--config", str(s.config), "--repo", str(s.repo),
        "init", "--preset", "laravel", str(s.app), "--root", str(s.root),
    )  # fmt: skip
    assert r.code == 0, r
    sandbox = tmp_path / "sandbox"
    d = DrillServer(s, cli, sandbox, pg, db)

    def extra(data: dict[str, Any]) -> None:
        data["components"]["billing"] = {"kind": "postgresql", "databases": [pg]}
        data["components"]["queue-db"] = {"kind": "sqlite", "path": str(db)}
        data["components"]["code"] = {"kind": "git", "path": str(s.app), "bundle": True}
        data["profiles"]["full"]["components"] += ["billing", "queue-db", "code"]
        data["drill"] = {"sandbox": str(sandbox), "profile": "full"}

    d.edit_config(extra)
    yield d
    assert d.scratch_databases() == [], "a drill left scratch databases behind"
