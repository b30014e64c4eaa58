"""The redis source against private redis-servers started by the tests (the shared one is not touched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from safehold.errors import SourceError
from safehold.sources import registry
from safehold.sources.base import SourceContext
from safehold.sources.redis import RDBStream, RedisSource
from tests.sources.conftest import RedisServer, free_port
from tests.sources.memcomponent import MemoryComponent


def populate(r: redis.Redis, prefix: str = "") -> None:
    r.set(f"{prefix}str", b"\x00\xffbinary \xf0\x9f\x98\x80")
    r.set(f"{prefix}str_ttl", "soon", ex=3600)
    r.hset(f"{prefix}hash", mapping={"a": "1", "b": "two", "emoji": "😀"})
    r.rpush(f"{prefix}list", *[f"item{i}" for i in range(300)])
    r.sadd(f"{prefix}set", "x", "y", "z")
    r.zadd(f"{prefix}zset", {"low": 1.5, "high": 99, "neg": -3})
    r.xadd(f"{prefix}stream", {"event": "signup", "user": "42"})
    r.xadd(f"{prefix}stream", {"event": "login", "user": "42"})
    r.xgroup_create(f"{prefix}stream", "workers", id="0")
    r.pexpire(f"{prefix}hash", 7_200_000)
    for i in range(1200):  # more than one SCAN/pipeline batch
        r.set(f"{prefix}bulk:{i}", i)


def snapshot(r: redis.Redis) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        value: Any
        if kind == "string":
            value = r.get(key)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "list":
            value = r.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(r.smembers(key))
        elif kind == "zset":
            value = r.zrange(key, 0, -1, withscores=True)
        else:
            value = (r.xrange(key), [g["name"] for g in r.xinfo_groups(key)])
        ttl = r.pttl(key)
        out[key] = (kind, value, "none" if ttl == -1 else ttl // 600_000)  # TTL to 10 minutes
    return out


def state(srv: RedisServer) -> dict[int, Any]:
    result = {}
    for db in (0, 3):
        c = srv.client(db)
        result[db] = snapshot(c)
        c.close()
    return result


@pytest.fixture
def source_server(redis_server: Any) -> RedisServer:
    srv = redis_server()
    c0, c3 = srv.client(0), srv.client(3)
    populate(c0)
    populate(c3, prefix="db3:")
    c0.close()
    c3.close()
    return srv


def opts(srv: RedisServer, **kw: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": srv.port, **kw}


def test_registered() -> None:
    assert registry.source_class("redis") is RedisSource


def test_backup_and_rdb_restore_into_stopped_server(
    source_server: RedisServer, redis_server: Any, mem: MemoryComponent
) -> None:
    before = state(source_server)
    assert len(before[0]) == 1207 and len(before[3]) == 1207
    meta = RedisSource("cache", opts(source_server)).backup(mem, SourceContext())
    rdb = mem.files["dump.rdb"]
    assert rdb.startswith(b"REDIS") and rdb[-9] == 0xFF
    assert meta["keyspace"] == {0: 1207, 3: 1207}
    assert meta["keys_exported"] == {"0": 1207, "3": 1207}
    assert meta["keys_by_type"]["0"] == {
        "string": 1202,
        "hash": 1,
        "list": 1,
        "set": 1,
        "zset": 1,
        "stream": 1,
    }
    assert json.loads(mem.files["keyspace.json"])["rdb_bytes"] == len(rdb)

    target = redis_server(start=False, name="restored")
    path = target.dir / "dump.rdb"
    report = RedisSource("cache", opts(target)).restore(
        mem, SourceContext(options={"mode": "rdb", "rdb_path": str(path), "port": target.port})
    )
    assert report.details["bytes"] == len(rdb) and path.read_bytes() == rdb
    target.start()
    assert state(target) == before

    # the running server now uses that file: an RDB restore onto it is refused
    with pytest.raises(SourceError, match="is running with"):
        RedisSource("cache", opts(target)).restore(
            mem, SourceContext(force=True, options={"mode": "rdb", "rdb_path": str(path)})
        )


def test_live_restore_every_type_and_ttl(
    source_server: RedisServer, redis_server: Any, mem: MemoryComponent
) -> None:
    before = state(source_server)
    RedisSource("cache", opts(source_server)).backup(mem, SourceContext())
    target = redis_server()
    src = RedisSource("cache", opts(target))
    plan = src.restore(mem, SourceContext(dry_run=True))
    assert plan.actions == [f"restore 2414 keys into 127.0.0.1:{target.port}"]
    assert state(target) == {0: {}, 3: {}}
    report = src.restore(mem, SourceContext())
    assert report.details["keys"] == 2414
    assert state(target) == before

    c = target.client()
    c.set("str", "changed")
    c.close()
    with pytest.raises(SourceError, match="2414 of 2414 keys already exist") as exc:
        src.restore(mem, SourceContext())
    assert "--force" in exc.value.hint
    src.restore(mem, SourceContext(force=True))
    assert state(target) == before


def test_live_restore_into_one_db(
    source_server: RedisServer, redis_server: Any, mem: MemoryComponent
) -> None:
    RedisSource("cache", opts(source_server)).backup(mem, SourceContext())
    target = redis_server()
    RedisSource("cache", opts(target)).restore(mem, SourceContext(options={"db": 5}))
    c = target.client(5)
    assert c.dbsize() == 2414 and c.lrange("db3:list", 0, 1) == [b"item0", b"item1"]
    c.close()


def test_wrong_password_fails_without_leaking(redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = redis_server()
    c = srv.client()
    c.config_set("requirepass", "right-Secret-1")
    c.close()
    monkeypatch.setenv("SH_REDIS_PW", "wrong-Secret-2")
    with pytest.raises(SourceError) as exc:
        RedisSource("cache", opts(srv, password={"env": "SH_REDIS_PW"})).backup(
            MemoryComponent(), SourceContext()
        )
    assert "cannot reach Redis" in str(exc.value)
    assert "wrong-Secret-2" not in str(exc.value) + exc.value.hint
    monkeypatch.setenv("SH_REDIS_PW", "right-Secret-1")
    mem = MemoryComponent()
    RedisSource("cache", opts(srv, password={"env": "SH_REDIS_PW"})).backup(mem, SourceContext())
    assert mem.files["dump.rdb"].startswith(b"REDIS")
    assert not any("right-Secret-1" in line for line in mem.lines)


def test_unreachable_server() -> None:
    with pytest.raises(SourceError, match="cannot reach Redis"):
        RedisSource("cache", {"port": free_port()}).backup(MemoryComponent(), SourceContext())


def test_missing_tool(tool_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", tool_path([]))
    with pytest.raises(SourceError, match="redis-cli not found") as exc:
        RedisSource("cache", {}).backup(MemoryComponent(), SourceContext())
    assert "redis-tools" in exc.value.hint


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('/usr/bin/redis-cli "$@" | head -c 5000\nexit 0\n', "truncated"),
        ('/usr/bin/redis-cli "$@" | head -c 5000\nkill -KILL $$\n', "killed by signal 9"),
        (
            'echo "Error: Server closed the connection" >&2\nexit 1\n',
            "exited with status 1: Error: Server closed",
        ),
    ],
)
def test_dump_cut_half_way_fails_closed(
    source_server: RedisServer, tmp_path: Path, script: str, message: str
) -> None:
    wrapper = tmp_path / "redis-cli"
    wrapper.write_text("#!/bin/sh\n" + script)
    wrapper.chmod(0o755)
    mem = MemoryComponent()
    with pytest.raises(SourceError, match=message):
        RedisSource("cache", opts(source_server, redis_cli=str(wrapper))).backup(mem, SourceContext())
    assert "keyspace.json" not in mem.files


class _Chunks:
    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def read(self, n: int = -1) -> bytes:
        block = self.data[self.pos : self.pos + min(n, self.size)]
        self.pos += len(block)
        return block


@pytest.mark.parametrize("size", [1, 7, 100])
def test_rdb_stream_strips_only_the_eof_mark(size: int) -> None:
    rdb = b"REDIS0010" + b"x" * 200 + b"\xff" + b"\x01" * 8
    mark = b"0123456789abcdef0123456789abcdef01234567"

    def run(data: bytes) -> tuple[bytes, bool]:
        s = RDBStream(_Chunks(data, size))  # type: ignore[arg-type]
        out = b""
        while block := s.read(size):
            out += block
        return out, s.mark_removed

    assert run(rdb + mark) == (rdb, True)
    assert run(rdb) == (rdb, False)
    assert run(rdb[:-30]) == (rdb[:-30], False)
