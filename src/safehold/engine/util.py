"""Small helpers shared by the engine."""

from __future__ import annotations

import fcntl
import hashlib

_F_SETPIPE_SZ = 1031  # Linux
PIPE_SIZE = 1024 * 1024


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Ask for a larger pipe buffer (fewer, larger reads and writes); harmless where it is refused."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    except OSError:
        pass


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
