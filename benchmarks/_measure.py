"""Measuring child processes, tmpfs handling, disk usage and tree comparison for the benchmark runner.

``measure(cmd)`` runs one command and returns its wall time, CPU times and peak RSS from ``os.wait4``
(the rusage of that child; ``ru_maxrss`` is the largest resident set of the child or of any descendant
it waited for, not a sum over processes). Output goes to a log file, never to the terminal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measured:
    """One timed command: wall seconds, user/sys CPU seconds, peak RSS in KiB, exit code."""

    cmd: list[str]
    seconds: float
    user: float
    sys: float
    maxrss_kib: int
    returncode: int
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path,
    timeout: float = 3600.0,
) -> Measured:
    """Run ``cmd`` to completion (killed after ``timeout`` s), appending its output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    tail = ""
    if proc.returncode != 0:
        tail = log.read_bytes()[-2000:].decode(errors="replace")
    return Measured(
        list(cmd), round(seconds, 3), round(usage.ru_utime, 3), round(usage.ru_stime, 3),
        usage.ru_maxrss, proc.returncode, tail,
    )  # fmt: skip


def disk_usage(path: Path) -> tuple[int, int]:
    """(allocated bytes like ``du``, apparent bytes) of everything under ``path``; hard links once."""
    seen: set[tuple[int, int]] = set()
    used = apparent = 0
    for dirpath, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            apparent += st.st_size
    return used, apparent


def tree_manifest(root: Path) -> dict[str, tuple[str, int, str]]:
    """relative path -> (kind, permission bits, content sha256 or link target) for a whole tree."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, "")
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", mode, hashlib.file_digest(f, "sha256").hexdigest())
    return out


def compare_trees(expected: Path, actual: Path, limit: int = 5) -> list[str]:
    """Differences between two trees (names, kinds, modes, bytes, link targets); empty if equal."""
    a, b = tree_manifest(expected), tree_manifest(actual)
    diffs = [f"missing: {k}" for k in sorted(a.keys() - b.keys())]
    diffs += [f"extra: {k}" for k in sorted(b.keys() - a.keys())]
    diffs += [f"differs: {k} {a[k][:2]} vs {b[k][:2]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    return diffs[:limit] + ([f"... {len(diffs) - limit} more"] if len(diffs) > limit else [])


@contextmanager
def tmpfs(parent: Path, given: Path | None, size_gib: int) -> Iterator[tuple[Path | None, str]]:
    """Yield (tmpfs directory or None, note). Uses ``given`` as is; otherwise mounts one when root."""
    if given is not None:
        yield given, f"tmpfs given: {given}"
        return
    if os.geteuid() != 0:
        yield None, "tmpfs column skipped: not root and no --tmpfs DIR given"
        return
    mnt = Path(tempfile.mkdtemp(prefix="tmpfs-", dir=parent))
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_gib}g", "tmpfs", str(mnt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        mnt.rmdir()
        yield None, f"tmpfs column skipped: mount failed: {res.stderr.strip()}"
        return
    try:
        yield mnt, f"tmpfs mounted at {mnt} (size={size_gib}g)"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        try:
            mnt.rmdir()
        except OSError:
            pass


def remove(path: Path) -> None:
    """Remove a file or tree if it exists, then flush dirty pages so the next step starts even."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.sync()
