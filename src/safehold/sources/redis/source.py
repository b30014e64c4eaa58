"""The ``redis`` source (see the package docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import IO, Any, ClassVar, cast

import msgpack
import redis as redis_lib
from pydantic import BaseModel

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.base import (
    Finding,
    Redirect,
    RestorePlan,
    RestoreReport,
    Source,
    SourceContext,
    server_moved,
)
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter, stream_of
from safehold.sources.redis import restore
from safehold.sources.redis.client import BATCH, Conn
from safehold.sources.redis.options import RedisOptions, RedisRestoreOptions
from safehold.sources.verify import Sandbox, VerifyReport

EOF_MARK_LEN = 40
_HEX40 = re.compile(rb"[0-9a-f]{40}")


class RDBStream:
    """Passes an RDB stream through, holding back its last 40 bytes; at EOF drops them when they are
    the diskless-replication EOF mark that redis-cli 7.0 writes to stdout (hex text right after the
    RDB's EOF opcode 0xFF and 8-byte checksum)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._held = b""
        self._done = False
        self.mark_removed = False

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        return self.read(n)

    def read(self, n: int = -1) -> bytes:
        n = 1 << 20 if n is None or n < 0 else n
        while not self._done:
            reader = getattr(self._raw, "read1", None)
            block = reader(n) if reader is not None else self._raw.read(n)
            if not block:
                self._done = True
                held, self._held = self._held, b""
                if len(held) >= EOF_MARK_LEN + 9 and held[-49] == 0xFF and _HEX40.fullmatch(held[-40:]):
                    self.mark_removed = True
                    return held[:-EOF_MARK_LEN]
                return held
            data = self._held + block
            if len(data) <= 64:
                self._held = data
                continue
            self._held = data[-64:]
            return data[:-64]
        return b""


def _check_rdb(stream: proc.ObservedStream) -> str | None:
    if not stream.head.startswith(b"REDIS"):
        return "output is not an RDB file"
    if len(stream.tail) < 9 or stream.tail[-9] != 0xFF:
        return "RDB is truncated (no EOF opcode and checksum at its end)"
    return None


class RedisSource(Source):
    """RDB snapshots of a running Redis server and per-key exports; restores both ways."""

    kind: ClassVar[str] = "redis"
    Options: ClassVar[type[BaseModel]] = RedisOptions
    RestoreOptions: ClassVar[type[BaseModel]] = RedisRestoreOptions
    restore_rank: ClassVar[int] = 80
    export_folder: ClassVar[str | None] = "system/redis"
    export_note: ClassVar[str] = (
        "`{base}/dump.rdb`: a point-in-time Redis RDB. Restore: stop redis-server, copy it to the "
        "server's `dir`/`dbfilename` (usually `/var/lib/redis/dump.rdb`, owner redis), start it again. "
        "`keys.dump` (msgpack of DUMP payloads) is for safehold's own per-key restore."
    )
    options: RedisOptions

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        cli = proc.find_tool([self.options.redis_cli or "redis-cli"], package="redis-tools")
        ci = Conn(self.options, {}, owner=f"component {self.name}")

        def log(msg: str) -> None:
            out.log(msg)
            ctx.log(msg)

        client = ci.client()
        try:
            try:
                info = client.info()
            except redis_lib.RedisError as exc:
                raise SourceError(
                    proc.redact(f"cannot reach Redis at {ci.where}: {exc}", [ci.password]),
                    hint="Check host/port/socket and the password reference.",
                ) from None
            keyspace = {int(k[2:]): int(v["keys"]) for k, v in info.items() if re.fullmatch(r"db\d+", k)}
            holder: dict[str, RDBStream] = {}

            def wrap(raw: IO[bytes]) -> IO[bytes]:
                holder["s"] = RDBStream(raw)
                return cast(IO[bytes], holder["s"])

            stored, res = proc.drain(
                [cli, *ci.cli_args(), "--rdb", "-"],
                lambda stream: out.add_stream("dump.rdb", stream),
                env=ci.env(),
                secrets=[ci.password],
                validate=_check_rdb,
                wrap=wrap,
                log=log,
            )
            meta: dict[str, Any] = {
                "redis_version": info.get("redis_version"),
                "dump_tool_version": proc.tool_version(cli),
                "rdb_bytes": res.size,
                "rdb_sha256": stored.sha256,
                "rdb_seconds": round(res.seconds, 3),
                "keyspace": keyspace,
            }
            if self.options.keys_export:
                counts: dict[str, dict[str, int]] = {}
                started = time.time()
                stats = out.add_stream("keys.dump", stream_of(self._export(client, ci, keyspace, counts)))
                meta["keys_exported"] = {db: sum(c.values()) for db, c in counts.items()}
                meta["keys_by_type"] = counts
                meta["keys_bytes"] = stats.size
                meta["keys_started"] = started
            log(f"redis {info.get('redis_version')}: rdb {res.size} bytes, {sum(keyspace.values())} keys")
            out.add_bytes("keyspace.json", json.dumps(meta, indent=2, sort_keys=True).encode())
            return meta
        finally:
            client.close()

    def _export(
        self, client: redis_lib.Redis, ci: Conn, keyspace: dict[int, int], counts: dict[str, dict[str, int]]
    ) -> Iterator[bytes]:
        yield msgpack.packb({"format": "safehold-redis-keys", "version": 1, "created": time.time()})
        for db in sorted(keyspace):
            per_type = counts.setdefault(str(db), {})
            c = ci.client(db)
            try:
                batch: list[bytes] = []
                for key in c.scan_iter(count=1000):
                    batch.append(key)
                    if len(batch) >= BATCH:
                        yield from self._dump_batch(c, db, batch, per_type)
                        batch = []
                if batch:
                    yield from self._dump_batch(c, db, batch, per_type)
            finally:
                c.close()

    @staticmethod
    def _dump_batch(
        c: redis_lib.Redis, db: int, keys: list[bytes], per_type: dict[str, int]
    ) -> Iterator[bytes]:
        pipe = c.pipeline(transaction=True)  # MULTI: type, value and TTL of a key read together
        for k in keys:
            pipe.type(k)
            pipe.dump(k)
            pipe.pttl(k)
        replies = pipe.execute()
        parts = []
        for i, k in enumerate(keys):
            kind, value, pttl = replies[3 * i : 3 * i + 3]
            if value is None:  # expired or deleted since SCAN saw it
                continue
            name = kind.decode() if isinstance(kind, bytes) else str(kind)
            per_type[name] = per_type.get(name, 0) + 1
            parts.append(msgpack.packb({"db": db, "key": k, "type": name, "pttl": int(pttl), "value": value}))
        yield b"".join(parts)

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        checks.tool([self.options.redis_cli or "redis-cli"], what="redis-cli")
        ci = Conn(self.options, {}, owner=f"component {self.name}")
        client = ci.client()
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        except Exception as exc:
            checks.problem(
                "ping",
                f"no PING answer from {ci.where}: {type(exc).__name__}: {exc}",
                "Check host, port, socket and the password reference.",
            )
            return checks.findings
        finally:
            client.close()
        checks.passed("ping", f"PING answered by {ci.where} (redis {version})")
        return checks.findings

    def secrets_note(self) -> str | None:
        return "cached sessions and tokens in the Redis dump"

    # restore
    @staticmethod
    def _server_redirect(where: Redirect) -> dict[str, Any]:
        """``--redis-*`` (else ``--db-*``) as connection overrides; Redis names its user 'username'."""
        source = where.redis or where.db
        out = {k: v for k, v in source.items() if v is not None and k != "database"}
        if "user" in out:
            out["username"] = out.pop("user")
        return out

    def redirect(self, where: Redirect) -> dict[str, Any]:
        return self._server_redirect(where)

    def redirected_settings(self, settings: dict[str, Any], where: Redirect) -> dict[str, Any]:
        return server_moved(settings, self._server_redirect(where))

    def safety_source(self, ctx: SourceContext) -> Source | None:
        """The live server's keys, when a forced restore replaces them there (not for an RDB file or
        another server)."""
        ro: RedisRestoreOptions = self.restore_options(ctx.options)
        moved = ro.mode == "rdb" or any(v is not None for v in (ro.host, ro.port, ro.socket))
        return self if ctx.force and not moved else None

    def restore_hints(self) -> list[str]:
        return [
            f"# into another server: safehold restore {self.name} --snapshot SNAP --redis-host HOST --redis-port PORT"
        ]

    # drill
    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Load dump.rdb into a scratch redis-server the drill starts (sandbox folder, free loopback
        port), compare keys per database with the backup's and a sample of values with the key export."""
        from safehold.sources.redis.verify import verify_redis

        return verify_redis(self.name, self.kind, snap, sandbox, ctx)

    @classmethod
    def cleanup_scratch(cls, resource: dict[str, Any]) -> str:
        from safehold.sources.redis.verify import cleanup_server

        return cleanup_server(resource)

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        return restore.plan_restore(self.name, self.options, self.restore_options(ctx.options), snap, ctx)

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        return restore.apply(self.name, self.options, plan, snap, ctx)
