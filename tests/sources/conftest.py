"""Fixtures for the database sources: real servers, throwaway databases, users and redis-servers.

Every fixture creates objects with random names and drops them afterwards; nothing else on the servers
is touched. The shared Redis on 6379 is only read by tests; destructive Redis tests start their own
redis-server (:func:`redis_server`).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import redis

from tests.helpers.fixtures import repo, repo_path  # noqa: F401 - the repository fixtures (the conformance suite)
from tests.sources.memcomponent import MemoryComponent

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def rand(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@pytest.fixture
def mem(tmp_path: Path) -> MemoryComponent:
    return MemoryComponent(scratch=tmp_path / "scratch")


def mysql_root(database: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**MYSQL, database=database, charset="utf8mb4", autocommit=True)  # type: ignore[arg-type]


@pytest.fixture
def mysql_dbs() -> Iterator[Callable[[], str]]:
    """A factory of empty databases with random names (all dropped afterwards)."""
    made: list[str] = []

    def make(create: bool = True) -> str:
        name = rand("sh_test")
        made.append(name)
        if create:
            with mysql_root() as c, c.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return name

    yield make  # type: ignore[misc]
    with mysql_root() as c, c.cursor() as cur:
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mysql_users() -> Iterator[Callable[..., tuple[str, str]]]:
    """A factory of users '<random>'@'127.0.0.1' with a random password; dropped afterwards."""
    made: list[str] = []

    def make(*grants: str) -> tuple[str, str]:
        user, password = rand("sh_u"), secrets.token_urlsafe(12)
        made.append(user)
        with mysql_root() as c, c.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            for g in grants:
                cur.execute(g.format(user=f"'{user}'@'127.0.0.1'"))
        return user, password

    yield make
    with mysql_root() as c, c.cursor() as cur:
        for user in made:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def pg_admin(dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(**PG, dbname=dbname, autocommit=True)  # type: ignore[arg-type]


@pytest.fixture
def pg_dbs() -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(create: bool = True) -> str:
        name = rand("sh_test")
        made.append(name)
        if create:
            with pg_admin() as c:
                c.execute(f'CREATE DATABASE "{name}"')
        return name

    yield make
    with pg_admin() as c:
        for name in made:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_roles() -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(*grants: str, password: str | None = None) -> str:
        role = rand("sh_r")
        made.append(role)
        with pg_admin() as c:
            if password:
                c.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            else:
                c.execute(f'CREATE ROLE "{role}" LOGIN')
            for g in grants:
                c.execute(g.format(role=f'"{role}"'))
        return role

    yield make
    with pg_admin() as c:
        for role in made:
            c.execute(f'DROP ROLE IF EXISTS "{role}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, dbfilename: str = "dump.rdb") -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--dbfilename",
                dbfilename,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(
            f"redis-server on {self.port} did not start: {(self.dir / 'redis.log').read_text()}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A factory of private redis-servers on free loopback ports, data dir in tmp; all stopped after."""
    servers: list[RedisServer] = []

    def make(start: bool = True, name: str | None = None) -> RedisServer:
        srv = RedisServer(port=free_port(), dir=tmp_path / (name or f"redis{len(servers)}"))
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def tool_path(tmp_path: Path) -> Callable[..., str]:
    """A PATH with only the named tools (symlinked), plus optional wrapper scripts; for missing-tool
    and killed-dump tests."""
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def make(links: list[str], scripts: dict[str, str] | None = None) -> str:
        for name in links:
            real = shutil.which(name)
            assert real, name
            (bindir / name).symlink_to(real)
        for name, body in (scripts or {}).items():
            p = bindir / name
            p.write_text(body)
            p.chmod(0o755)
        return str(bindir)

    return make
