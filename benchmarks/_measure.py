"""Measuring child processes, tmpfs handling, disk usage and tree comparison for the benchmark runner.

``measure(cmd)`` runs one command and returns its wall time, CPU times and peak RSS from ``os.wait4``
(the rusage of that child, taken by a small wrapper process: see ``measure``; ``ru_maxrss`` is the
largest resident set of the child or of any descendant it waited for, not a sum over processes).
Output goes to a log file, never to the terminal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
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
    #: Peak of the summed proportional set size (PSS) of the command and every process it started,
    #: sampled every 50 ms: ``maxrss_kib`` is one process's peak, and a command with helper processes
    #: uses more than that.
    tree_pss_kib: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# Runs argv[2:] as a forked child of this small interpreter and writes "seconds utime stime maxrss
# status" of that child to the file descriptor argv[1].
_WRAPPER = """
import os, sys, time
fd = int(sys.argv[1])
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as e:
        os.write(2, ("cannot run %s: %s\\n" % (sys.argv[2], e)).encode())
    os._exit(127)
_, status, ru = os.wait4(pid, 0)
dt = time.perf_counter() - t
os.write(fd, ("%r %r %r %d %d" % (dt, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, status)).encode())
"""


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path,
    timeout: float = 3600.0,
) -> Measured:
    """Run ``cmd`` to completion (its process group killed after ``timeout`` s), output appended to ``log``.

    The command is forked from a small separate interpreter (``python -I -S``, ~7 MiB), which reports
    the ``os.wait4`` rusage of its child. Forking the command from this (large) process instead would
    make ``ru_maxrss`` report this process's own peak: Linux counts the parent's memory image that the
    child held until ``exec`` into the child's peak RSS. So every RSS here has a floor of ~7 MiB.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    rfd, wfd = os.pipe()
    try:
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WRAPPER, str(wfd), *cmd],
                cwd=cwd, env=dict(env) if env is not None else None, pass_fds=(wfd,),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            os.close(wfd)
            wfd = -1
            timed_out = False
            sampler = _TreeSampler(proc.pid)
            sampler.start()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            if timed_out:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                out.write(f"timed out after {timeout} s\n".encode())
                return Measured(
                    list(cmd), timeout, 0.0, 0.0, 0, -signal.SIGKILL, f"timed out after {timeout} s"
                )
            sampler.stop()
        report = os.read(rfd, 4096).decode().split()
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    if len(report) != 5:
        raise RuntimeError(f"measuring {cmd[0]} failed (wrapper exit {proc.returncode}); see {log}")
    seconds, user, system, maxrss, status = (
        float(report[0]),
        float(report[1]),
        float(report[2]),
        int(report[3]),
        int(report[4]),
    )
    returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_bytes()[-2000:].decode(errors="replace") if returncode != 0 else ""
    return Measured(
        list(cmd), round(seconds, 3), round(user, 3), round(system, 3), maxrss, returncode, tail, sampler.peak
    )


class _TreeSampler(threading.Thread):
    """Samples the summed PSS of every process in the session ``sid`` except the wrapper (``sid``)."""

    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True)
        self.sid = sid
        self.peak = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self._total())

    def _total(self) -> int:
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.sid:
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if int(fields[3]) != self.sid:  # field 6 of stat: session id
                    continue
                with open(f"/proc/{entry}/smaps_rollup", "rb") as f:
                    for line in f:
                        if line.startswith(b"Pss:"):
                            total += int(line.split()[1])
                            break
            except (OSError, ValueError, IndexError):
                continue
        return total


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
