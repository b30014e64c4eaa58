"""Throughput of backup, restore and copy on local disk, S3 (moto on loopback) and SFTP (sshd on loopback).

Usage: ``python -m benchmarks.remote [--scale 0.3] [--workdir DIR] [--connections N]``

Generates the engine benchmark's data set (:func:`benchmarks.gen.generate`) at ``--scale``, then through
the engine API (no CLI start-up in the timings) backs it up into a fresh repository on each backend,
restores it from each, and copies the local snapshot to S3. Prints MB/s (source bytes / wall seconds) and
the ratio to local disk. The S3 server is moto's (a Python server: its own CPU use competes with the
backup for the 2 cores, so the S3 figure is a lower bound of what a real S3 endpoint gives); the SSH
server is the system's sshd on 127.0.0.1 with a throwaway key.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PASSWORD = "benchmark passphrase"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sshd(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A throwaway sshd on loopback; yields (sftp URL prefix, backend options)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)],
            check=True,
            capture_output=True,
        )
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nMaxSessions 30\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        pub = (folder / "host_key.pub").read_text().split()
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        yield (
            f"sftp://{getpass.getuser()}@127.0.0.1:{port}",
            {"identity_file": str(folder / "user_key"), "known_hosts": str(folder / "known_hosts")},
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def moto() -> Iterator[dict[str, Any]]:
    """moto's S3 server on loopback; yields S3 backend options."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ["AWS_CONFIG_FILE"] = "/nonexistent/safehold-bench"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/safehold-bench"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {"endpoint_url": f"http://{host}:{port}", "region": "us-east-1", "path_style": True}
    finally:
        server.stop()


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(scale: float, work: Path, connections: int | None) -> list[tuple[str, float, float]]:
    """Run every measurement; rows of (what, seconds, MB/s)."""
    from safehold.engine.format import keys

    keys.use_kdf_params_for_new_keys(keys.CHEAPEST_KDF_PARAMS)  # key derivation is not what is measured
    os.environ["SAFEHOLD_CACHE_DIR"] = str(work / "cache")
    from benchmarks.gen import generate
    from safehold.backends.registry import open_backend
    from safehold.engine.format.repository import Repository
    from safehold.operations.backup.paths import BackupOptions, backup_paths
    from safehold.operations.maintenance.copy import copy_snapshots
    from safehold.operations.restore.snapshot import RestoreOptions, restore_snapshot

    src = work / "data"
    if not src.exists():
        generate(src, scale, 1)
    for old in ("repo-local", "repo-sftp", "restore", "cache", "sshd"):
        shutil.rmtree(work / old, ignore_errors=True)
    size = _tree_bytes(src)
    rows: list[tuple[str, float, float]] = []

    def record(what: str, seconds: float) -> None:
        rows.append((what, seconds, size / seconds / 1e6))
        print(f"{what:<28} {seconds:7.1f} s  {size / seconds / 1e6:7.1f} MB/s", flush=True)

    print(f"data set: scale {scale}, {size / 1e6:.0f} MB in {src}", flush=True)

    def opts(extra: dict[str, Any]) -> dict[str, Any]:
        return {**extra, **({"connections": connections} if connections else {})}

    def roundtrip(name: str, url: str, options: dict[str, Any]) -> Repository:
        repo = Repository.init(open_backend(url, **opts(options)), PASSWORD)
        record(
            f"backup -> {name}",
            _timed(lambda: backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False))),
        )
        target = work / "restore"
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        record(
            f"restore <- {name}",
            _timed(lambda: restore_snapshot(repo, RestoreOptions(snapshot="latest", target=str(target)))),
        )
        shutil.rmtree(target, ignore_errors=True)
        return repo

    local = roundtrip("local", str(work / "repo-local"), {})
    with moto() as s3opts:
        roundtrip("s3", "s3://bench-backup/repo", s3opts)
        dst = Repository.init(
            open_backend("s3://bench-copy/repo", **opts(s3opts)), PASSWORD, chunker_from=local.config
        )
        record("copy local -> s3", _timed(lambda: copy_snapshots(local, dst)))
    with sshd(work / "sshd") as (prefix, sftp_opts):
        roundtrip("sftp", f"{prefix}{work / 'repo-sftp'}", sftp_opts)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--connections", type=int, default=None, help="override every backend's default")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="safehold-bench-remote-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = run(args.scale, work, args.connections)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    by = {what: mbs for what, _s, mbs in rows}
    print("\n| operation | MB/s | ratio to local |\n|---|---|---|")
    for what, _s, mbs in rows:
        base = by["restore <- local"] if what.startswith("restore") else by["backup -> local"]
        print(f"| {what} | {mbs:.1f} | {mbs / base:.2f} |")


if __name__ == "__main__":
    main()
