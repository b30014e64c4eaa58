"""Fixtures of the whole-server test: a Laravel-like server in a temporary root and the real CLI.

``laravel_server`` (one per test module) builds, below a temporary ``R``, the files of :mod:`tests.e2e.server`, a MariaDB
database with a random name, a private redis-server on a free loopback port and seeded fake Retell and
Cal.com servers, and names them in ``R/var/www/app/.env`` the way a Laravel application does. Everything is
dropped or stopped afterwards; the shared Redis on 6379 is never touched.

``cli`` runs ``python -m safehold`` in a subprocess with a clean environment: ``HOME`` in the test's
folder (so no ``~/.config/safehold`` of the machine is found), no ``SAFEHOLD_*`` variable except those
the test passes, cheap key derivation and a private cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import build_tree, env_text, seed_mysql, seed_redis
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_calcom, seed_retell
from tests.fakes.saas_server import FakeSaasServer
from tests.helpers.cli import SAFEHOLD
from tests.sources.conftest import (  # noqa: F401 - fixtures
    RedisServer,
    free_port,
    mysql_dbs,
    mysql_root,
    rand,
    redis_server,
)

PASSPHRASE = "e2e whole server passphrase"
RETELL_KEY = "key_e2e_retell_0123456789"
CALCOM_KEY = "cal_live_e2e_0123456789"


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    argv: list[str]

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"$ safehold {' '.join(self.argv)}\nexit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


Cli = Callable[..., CliResult]


def make_cli(folder: Path) -> Cli:
    """The CLI runner with its HOME and cache below ``folder``."""
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    cache = folder / "cache"

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
        e = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
        e.update(
            HOME=str(home),
            SAFEHOLD_CACHE_DIR=str(cache),
            SAFEHOLD_PASSWORD=PASSPHRASE,
            SAFEHOLD_AUDIT_LOG=str(folder / "audit.jsonl"),
        )
        e.update(env or {})
        p = subprocess.run(
            [*SAFEHOLD, *args],
            capture_output=True,
            text=True,
            env=e,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return CliResult(p.returncode, p.stdout, p.stderr, list(args))

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


@dataclass
class LaravelServer:
    root: Path
    app: Path
    db: str
    redis: RedisServer
    retell: FakeRetell
    retell_url: str
    calcom: FakeCalcom
    calcom_url: str
    tmp: Path

    @property
    def config(self) -> Path:
        return self.root / "safehold.toml"

    @property
    def repo(self) -> Path:
        return self.tmp / "repo"


@contextmanager
def build_laravel_server(tmp: Path) -> Iterator[LaravelServer]:
    """The whole server below ``tmp``: its database, Redis, SaaS fakes and tree; removed on exit."""
    db = rand("sh_test")
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    rs = RedisServer(port=free_port(), dir=tmp / "redis-main")
    try:
        seed_mysql(db)
        rs.start()
        seed_redis(rs.client())
        retell = FakeRetell(api_key=RETELL_KEY)
        seed_retell(retell)
        calcom = FakeCalcom(api_key=CALCOM_KEY)
        seed_calcom(calcom)
        with FakeSaasServer(retell) as rsrv, FakeSaasServer(calcom) as csrv:
            root = tmp / "R"
            env = env_text(
                db=db,
                redis_port=rs.port,
                retell=(RETELL_KEY, rsrv.url),
                calcom=(CALCOM_KEY, csrv.url + "/v2"),
            )
            app = build_tree(root, env)
            yield LaravelServer(root, app, db, rs, retell, rsrv.url, calcom, csrv.url + "/v2", tmp)
    finally:
        rs.stop()
        with mysql_root() as c, c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture(scope="module")
def laravel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaravelServer]:
    """One server per test module (building it and its first backup is the expensive part); the tests of
    a module share it, so a module orders its tests from those that only read it to those that destroy it."""
    with build_laravel_server(tmp_path_factory.mktemp("e2e")) as s:
        yield s
