"""Fixtures of the whole-server test: a Laravel-like server in a temporary root and the real CLI.

``laravel_server`` builds, below ``tmp_path/"R"``, the files of :mod:`tests.e2e.server`, a MariaDB
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli import SAFEHOLD
from tests.e2e.server import build_tree, env_text, seed_mysql, seed_redis
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_calcom, seed_retell
from tests.fakes.saas_server import FakeSaasServer
from tests.sources.conftest import RedisServer, mysql_dbs, redis_server  # noqa: F401 - fixtures

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


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cache = tmp_path / "cache"

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
        e = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
        e.update(
            HOME=str(home),
            SAFEHOLD_CACHE_DIR=str(cache),
            SAFEHOLD_PASSWORD=PASSPHRASE,
            SAFEHOLD_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
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


@pytest.fixture
def laravel_server(
    tmp_path: Path,
    mysql_dbs: Callable[..., str],  # noqa: F811
    redis_server: Callable[..., RedisServer],  # noqa: F811
) -> Iterator[LaravelServer]:
    db = mysql_dbs()
    seed_mysql(db)
    rs = redis_server(name="redis-main")
    seed_redis(rs.client())
    retell = FakeRetell(api_key=RETELL_KEY)
    seed_retell(retell)
    calcom = FakeCalcom(api_key=CALCOM_KEY)
    seed_calcom(calcom)
    with FakeSaasServer(retell) as rsrv, FakeSaasServer(calcom) as csrv:
        root = tmp_path / "R"
        env = env_text(
            db=db,
            redis_port=rs.port,
            retell=(RETELL_KEY, rsrv.url),
            calcom=(CALCOM_KEY, csrv.url + "/v2"),
        )
        app = build_tree(root, env)
        yield LaravelServer(root, app, db, rs, retell, rsrv.url, calcom, csrv.url + "/v2", tmp_path)
