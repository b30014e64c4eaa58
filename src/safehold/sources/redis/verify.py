"""Drill verification of the ``redis`` kind: the RDB file loaded by a scratch redis-server that the drill
starts on a free loopback port (its folder in the sandbox, nothing saved), its keys per database counted
against the ones recorded at backup time, and a sample of values compared with the key export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import redis as redis_lib

from safehold import proc as proc_rules
from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.component import ComponentReader
from safehold.sources.verify import Check, Sandbox, VerifyReport

SAMPLE = 100
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(folder: Path, sandbox: Sandbox, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        raise SourceError(
            "redis-server is not installed", hint="Install it (Debian: apt-get install redis-server)."
        )
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=proc_rules.die_with_parent(),  # noqa: PLW1509 - a killed drill leaves no scratch server
    )
    sandbox.register(kind, {"pid": proc.pid, "port": port, "dir": str(folder)})
    return proc, port


def _wait(proc: subprocess.Popen[bytes], client: redis_lib.Redis, folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (folder / "redis.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise SourceError(f"the scratch redis-server did not load the RDB file: {log[0][-200:]}")
        try:
            if client.ping() and int(client.info("persistence").get("loading", 0)) == 0:
                return
        except redis_lib.BusyLoadingError:
            pass
        except redis_lib.ConnectionError:
            pass
        time.sleep(0.05)
    raise SourceError(f"the scratch redis-server did not answer within {START_TIMEOUT:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_READ: dict[str, Callable[[redis_lib.Redis, bytes], Any]] = {
    "string": lambda c, k: c.get(k),
    "list": lambda c, k: c.lrange(k, 0, -1),
    "set": lambda c, k: sorted(c.smembers(k)),
    "hash": lambda c, k: sorted(c.hgetall(k).items()),
    "zset": lambda c, k: c.zrange(k, 0, -1, withscores=True),
    "stream": lambda c, k: c.xrange(k),
}
_PROBE = b"__safehold_drill_probe__"


def _same_value(c: redis_lib.Redis, key: bytes, exported: bytes, kind: str) -> bool:
    """The key's value equals the exported one: the export is RESTOREd under a probe key of the scratch
    server and both are read the same way (DUMP payloads of equal values may differ in encoding)."""
    read = _READ.get(kind)
    if read is None:
        return True  # a module type: its presence and type were checked
    c.restore(_PROBE, 0, exported, replace=True)
    try:
        return bool(read(c, key) == read(c, _PROBE))
    finally:
        c.delete(_PROBE)


def _sample(snap: ComponentReader, port: int, same_version: bool) -> list[str]:
    """Differences between up to SAMPLE exported keys and the scratch server."""
    if not snap.exists("keys.dump"):
        return []
    problems: list[str] = []
    clients: dict[int, redis_lib.Redis] = {}
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
    seen = 0
    try:
        for chunk in snap.open_stream("keys.dump"):
            unpacker.feed(chunk)
            for rec in unpacker:
                if "key" not in rec:
                    continue
                db = int(rec["db"])
                c = clients.setdefault(
                    db, redis_lib.Redis(host="127.0.0.1", port=port, db=db, socket_timeout=30)
                )
                raw = c.type(rec["key"])
                kind = raw.decode() if isinstance(raw, bytes) else str(raw)
                if kind != rec["type"] and not (kind == "none" and int(rec["pttl"]) > 0):
                    problems.append(f"db{db} key {rec['key']!r}: {kind}, the export has {rec['type']}")
                elif kind != "none" and not _same_value(c, rec["key"], rec["value"], kind):
                    problems.append(f"db{db} key {rec['key']!r}: value differs from the export")
                seen += 1
                if seen >= SAMPLE:
                    return problems
    finally:
        for c in clients.values():
            c.close()
    return problems


def verify_redis(
    name: str, kind: str, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext
) -> VerifyReport:
    t0 = time.monotonic()
    checks: list[Check] = []
    folder = sandbox.folder(name)
    proc = None
    try:
        meta = json.loads(snap.read_bytes("keyspace.json"))
        with (folder / "dump.rdb").open("wb") as f:
            for chunk in snap.open_stream("dump.rdb"):
                f.write(chunk)
        proc, port = _start(folder, sandbox, kind)
        client = redis_lib.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        try:
            _wait(proc, client, folder)
            got = {
                int(k[2:]): int(v["keys"]) for k, v in client.info("keyspace").items() if isinstance(v, dict)
            }
            want = {int(k): int(v) for k, v in (meta.get("keyspace") or {}).items()}
            if got != want:
                checks.append(
                    Check(
                        name, "keys", False, f"the RDB holds {got or 'no keys'}, the backup recorded {want}"
                    )
                )
            else:
                checks.append(
                    Check(
                        name,
                        "keys",
                        True,
                        f"RDB loaded by a scratch redis-server: {sum(got.values())} keys in {len(got)} database(s) as recorded",
                    )
                )
            same = str(client.info("server").get("redis_version")) == str(meta.get("redis_version"))
            if got == want:
                sandbox.loaded({"host": "127.0.0.1", "port": port})
            diffs = _sample(snap, port, same)
            if diffs:
                checks.append(
                    Check(
                        name, "sample", False, f"{len(diffs)} sampled key(s) differ: {diffs[0]}", lines=diffs
                    )
                )
            elif snap.exists("keys.dump"):
                checks.append(
                    Check(
                        name,
                        "sample",
                        True,
                        f"a sample of keys matches the export{'' if same else ' (types; another Redis version)'}",
                    )
                )
        finally:
            client.close()
    except (SourceError, OSError, ValueError, KeyError, redis_lib.RedisError) as exc:
        msg = exc.message if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        checks.append(Check(name, "load", False, msg))
    finally:
        if proc is not None:
            stop(proc)
    return VerifyReport(name, all(c.ok for c in checks), checks, duration=round(time.monotonic() - t0, 3))


def cleanup_server(resource: dict[str, Any]) -> str:
    """Stop a killed drill's scratch redis-server: only a process whose program is a redis-server and whose
    working folder is the recorded sandbox folder (redis-server changes into ``--dir``; a pid may have been
    reused by anything else)."""
    pid = int(resource.get("pid", 0))
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return f"scratch redis-server {pid} is gone"
    if pid <= 1 or "redis" not in os.path.basename(exe) or cwd != str(resource.get("dir")):
        return f"left process {pid} alone: not the drill's redis-server"
    os.kill(pid, signal.SIGKILL)
    return f"stopped scratch redis-server {pid}"
