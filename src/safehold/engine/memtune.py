"""Keep glibc from hoarding freed blob buffers.

Backups allocate and free many 0.5-8 MiB buffers from several threads. glibc raises its mmap threshold
after the first such buffer is freed, after which they come from per-thread heaps that rarely shrink:
peak RSS grows by tens of MiB for nothing. Pinning the threshold keeps large buffers mmapped (returned to
the kernel on free, grown with mremap without copying). No-op where mallopt is unavailable.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
_done = False


def tune_malloc() -> None:
    global _done
    if _done:
        return
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass
