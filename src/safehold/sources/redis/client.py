"""Connections to a Redis server: a component's connection settings (a restore's overrides win), checked
before anything connects, and the clients and redis-cli arguments made from them."""

from __future__ import annotations

from typing import Any

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from safehold import syntax
from safehold.secrets import resolve_secret
from safehold.sources.redis.options import RedisOptions

#: Keys per pipeline round trip (the key export at backup time, RESTORE and EXISTS at restore time).
BATCH = 500


class Conn:
    """Connection settings (``ov`` from a restore win), checked before anything connects."""

    def __init__(self, o: RedisOptions, ov: dict[str, Any], *, owner: str = "redis component") -> None:
        self.host = str(ov.get("host", o.host))
        self.port = int(ov.get("port", o.port))
        self.socket = ov.get("socket", o.socket if "host" not in ov and "port" not in ov else None)
        self.username = ov.get("username", o.username)
        for what, value in (("host", self.host), ("socket", self.socket), ("username", self.username)):
            if value is not None:
                syntax.check(str(value), syntax.CREDENTIAL, what=f"{owner}: {what}")
        ref = ov.get("password", o.password)
        self.password = resolve_secret(ref, syntax.CREDENTIAL, owner=f"{owner}: password")

    @property
    def where(self) -> str:
        return self.socket or f"{self.host}:{self.port}"

    def client(self, db: int = 0) -> redis_lib.Redis:
        kw: dict[str, Any] = {"db": db, "username": self.username, "password": self.password}
        kw.update(socket_timeout=30, socket_connect_timeout=10, retry=Retry(NoBackoff(), 0))
        if self.socket:
            return redis_lib.Redis(unix_socket_path=self.socket, **kw)
        return redis_lib.Redis(host=self.host, port=self.port, **kw)

    def cli_args(self) -> list[str]:
        args = ["-s", self.socket] if self.socket else ["-h", self.host, "-p", str(self.port)]
        if self.username:
            args += ["--user", self.username]
        return [*args, "--no-auth-warning"]

    def env(self) -> dict[str, str]:
        return {"REDISCLI_AUTH": self.password} if self.password is not None else {}


class Clients:
    """A client per database of ``ci``'s server (every database's keys into ``db`` when it is given), made
    on first use; all closed when the ``with`` block ends."""

    def __init__(self, ci: Conn, db: int | None) -> None:
        self._ci = ci
        self._db = db
        self._clients: dict[int, redis_lib.Redis] = {}

    def __call__(self, db: int) -> redis_lib.Redis:
        db = self._db if self._db is not None else db
        if db not in self._clients:
            self._clients[db] = self._ci.client(db)
        return self._clients[db]

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *_exc: object) -> None:
        for c in self._clients.values():
            c.close()
