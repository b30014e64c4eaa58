"""The ``redis`` source (see the package docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, cast

import msgpack
import redis as redis_lib
from pydantic import BaseModel, ConfigDict, Field
from redis.backoff import NoBackoff
from redis.retry import Retry

from safehold import proc, syntax
from safehold.engine.fs.safedir import folder_of, folder_warnings
from safehold.errors import RestoreRefused, SourceError
from safehold.fsutil import AtomicFile
from safehold.secrets import SecretRef, resolve_secret
from safehold.sources.base import Finding, Redirect, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter, stream_of
from safehold.sources.verify import Sandbox, VerifyReport

EOF_MARK_LEN = 40
_HEX40 = re.compile(rb"[0-9a-f]{40}")
BATCH = 500


class RedisOptions(BaseModel):
    """Settings of a ``redis`` component."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Server host.", examples=["127.0.0.1"])
    port: int = Field(default=6379, description="Server port.", examples=[6379])
    socket: str | None = Field(
        default=None,
        description="Unix socket path (instead of host/port).",
        examples=["/run/redis/redis.sock"],
    )
    username: str | None = Field(default=None, description="ACL user name (Redis 6+).", examples=["backup"])
    password: SecretRef | None = Field(
        default=None, description="Where the password comes from.", examples=[{"env": "REDIS_PASSWORD"}]
    )
    keys_export: bool = Field(
        default=True, description="Also export every key with DUMP/PTTL for a live restore.", examples=[True]
    )
    redis_cli: str | None = Field(
        default=None, description="Path of redis-cli.", examples=["/usr/bin/redis-cli"]
    )


class _Conn:
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


class RedisRestoreOptions(BaseModel):
    """What a restore of a ``redis`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["live", "rdb"] = Field(
        default="live", description="'live': RESTORE every key into a running server; 'rdb': write dump.rdb."
    )
    rdb_path: str | None = Field(default=None, description="With mode 'rdb': where to write dump.rdb.")
    db: int | None = Field(default=None, ge=0, description="Put every key into this database.")
    host: str | None = Field(default=None, description="Restore into this server.")
    port: int | None = Field(default=None, description="Its port.")
    socket: str | None = Field(default=None, description="Its Unix socket.")
    username: str | None = Field(default=None, description="User to connect as.")
    password: SecretRef | None = Field(default=None, description="Where its password comes from.")


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
        ci = _Conn(self.options, {}, owner=f"component {self.name}")

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
        self, client: redis_lib.Redis, ci: _Conn, keyspace: dict[int, int], counts: dict[str, dict[str, int]]
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
        ci = _Conn(self.options, {}, owner=f"component {self.name}")
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
        overrides = self._server_redirect(where)
        out = dict(settings)
        if "host" in overrides or "port" in overrides:
            out.pop("socket", None)
        out.update(overrides)
        return out

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
        ro: RedisRestoreOptions = self.restore_options(ctx.options)
        if ro.mode == "rdb":
            return self._plan_rdb(ro, ctx)
        return self._plan_live(ro, snap, ctx)

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        ro: RedisRestoreOptions = plan.options
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings))
        if ro.mode == "rdb":
            ((target,),) = plan.steps
            # the folder (the server's, which its user can change) reached without following its symlinks
            with (
                folder_of(target) as dfd,
                AtomicFile(target.name, mode=0o640, dir_fd=dfd) as f,
            ):
                for chunk in snap.open_stream("dump.rdb"):
                    f.write(chunk)
                f.commit()
            report.details = {"path": str(target), "bytes": f.size}
            return report
        ((clashes,),) = plan.steps
        ci = _Conn(self.options, _overrides(ro), owner=f"component {self.name}")
        clients: dict[int, redis_lib.Redis] = {}

        def client(db: int) -> redis_lib.Redis:
            db = ro.db if ro.db is not None else db
            if db not in clients:
                clients[db] = ci.client(db)
            return clients[db]

        restored = 0
        try:
            for batch in _batches(self._records(snap)):
                for db in {r["db"] for r in batch}:
                    pipe = client(db).pipeline(transaction=False)
                    for r in batch:
                        if r["db"] != db:
                            continue
                        ttl = max(int(r["pttl"]), 0)
                        pipe.restore(r["key"], ttl, r["value"], replace=ctx.force)
                        restored += 1
                    pipe.execute()
        except redis_lib.RedisError as exc:
            raise SourceError(
                proc.redact(f"restore into Redis at {ci.where} failed: {exc}", [ci.password])
            ) from None
        finally:
            for c in clients.values():
                c.close()
        report.details = {"keys": restored, "replaced": clashes if ctx.force else 0}
        ctx.log(f"restored {restored} keys into {ci.where}")
        return report

    def _records(self, snap: ComponentReader) -> Iterator[dict[str, Any]]:
        if not snap.exists("keys.dump"):
            raise SourceError(
                "this snapshot has no keys.dump (keys_export was off)",
                hint=f"Restore the RDB file instead: --set {self.name}.mode=rdb "
                f"--set {self.name}.rdb_path=/var/lib/redis/dump.rdb.",
            )
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        first = True
        for chunk in snap.open_stream("keys.dump"):
            unpacker.feed(chunk)
            for rec in unpacker:
                if first:
                    if rec.get("format") != "safehold-redis-keys":
                        raise SourceError("keys.dump is not a safehold key export")
                    first = False
                    continue
                yield rec

    def _plan_live(self, ro: RedisRestoreOptions, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        ci = _Conn(self.options, _overrides(ro), owner=f"component {self.name}")
        plan = RestorePlan(component=self.name, options=ro)
        clients: dict[int, redis_lib.Redis] = {}

        def client(db: int) -> redis_lib.Redis:
            db = ro.db if ro.db is not None else db
            if db not in clients:
                clients[db] = ci.client(db)
            return clients[db]

        try:
            total, clashes = 0, 0
            for batch in _batches(self._records(snap)):
                total += len(batch)
                for db in {r["db"] for r in batch}:
                    keys = [r["key"] for r in batch if r["db"] == db]
                    clashes += sum(bool(x) for x in _pipe(client(db), "exists", keys))
        except redis_lib.RedisError as exc:
            raise SourceError(proc.redact(f"Redis at {ci.where}: {exc}", [ci.password])) from None
        finally:
            for c in clients.values():
                c.close()
        if clashes and not ctx.force:
            raise RestoreRefused(
                f"{clashes} of {total} keys already exist on {ci.where}",
                hint="Restore into an empty server/database, or pass --force to replace them.",
            )
        how = f", replacing {clashes} existing" if clashes else ""
        plan.actions.append(f"restore {total} keys into {ci.where}{how}")
        plan.steps.append((clashes,))
        return plan

    def _plan_rdb(self, ro: RedisRestoreOptions, ctx: SourceContext) -> RestorePlan:
        if not ro.rdb_path:
            raise SourceError(
                "mode 'rdb' needs rdb_path",
                hint=f"Pass --set {self.name}.rdb_path=PATH, the server's dir/dbfilename "
                "(e.g. /var/lib/redis/dump.rdb).",
            )
        target = Path(ro.rdb_path)
        plan = RestorePlan(component=self.name, options=ro)
        running = _server_using(_Conn(self.options, _overrides(ro), owner=f"component {self.name}"), target)
        if running:
            raise SourceError(
                f"a Redis server at {running} is running with {target}",
                hint="Stop it first (it would overwrite the file when it shuts down), then restore, then start it.",
            )
        if target.exists() and not ctx.force:
            raise RestoreRefused(
                f"{target} exists", hint="Pass --force to replace it (with the server stopped)."
            )
        plan.actions.append(f"{'replace' if target.exists() else 'write'} {target}")
        plan.warnings += folder_warnings(target)
        plan.warnings.append("start the Redis server with this file as its dir/dbfilename afterwards")
        plan.steps.append((target,))
        return plan


def _overrides(ro: RedisRestoreOptions) -> dict[str, Any]:
    """The connection settings a restore was told (only those given)."""
    return ro.model_dump(exclude_none=True, include={"host", "port", "socket", "username", "password"})


def _server_using(ci: _Conn, target: Path) -> str | None:
    """The address of a reachable server whose RDB file is ``target``, else None (best effort)."""
    try:
        c = ci.client()
        try:
            d = c.config_get("dir").get("dir")
            f = c.config_get("dbfilename").get("dbfilename")
        finally:
            c.close()
    except redis_lib.RedisError:
        return None
    if d and f and Path(str(d)) / str(f) == target:
        return ci.where
    return None


def _batches(records: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _pipe(c: redis_lib.Redis, command: str, keys: list[bytes]) -> list[Any]:
    pipe = c.pipeline(transaction=False)
    for k in keys:
        getattr(pipe, command)(k)
    return list(pipe.execute())
