"""Content-defined chunking (FastCDC, seeded per repository) of buffers, files and streams.

pyfastcdc cuts fast (several GB/s), but its stream chunker allocates and zeroes a fresh 16 MiB buffer
for every stream: for thousands of 1 MiB files that is gigabytes of memset and page faults. This
:class:`Chunker` keeps one window buffer for all streams of its owner (one thread), and cuts whole
buffers (files that fit in one read) without any copy.

A cut point depends only on the bytes from the chunk's start to at most ``max_size`` further, so a
window of ``2 * max_size`` bytes is cut up to the last chunk that starts ``max_size`` or more before the
window's end; the rest moves to the front and the window is refilled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyfastcdc


class Chunker:
    """Cuts data with the repository's FastCDC parameters. Not thread-safe (one per thread)."""

    def __init__(self, avg_size: int, min_size: int, max_size: int, seed: int) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self._cdc = pyfastcdc.FastCDC(avg_size, min_size=min_size, max_size=max_size, seed=seed)
        self._window: bytearray | None = None

    def cut(self, data: bytes | memoryview) -> list[memoryview]:
        """The chunks of a whole buffer, as views into it (no copy)."""
        if not data:
            return []
        if len(data) <= self.min_size:
            return [memoryview(data)]
        return [c.data for c in self._cdc.cut_buf(data)]

    def stream(self, readinto: Callable[[memoryview], int | None]) -> Iterator[bytes]:
        """The chunks of everything ``readinto`` delivers until it returns 0 (end of input), as copies.

        ``readinto`` is a file's ``readinto`` (a short read is not taken for the end).
        """
        if self._window is None:
            self._window = bytearray(2 * self.max_size)
        buf = self._window
        view = memoryview(buf)
        filled = 0
        eof = False
        try:
            while True:
                while not eof and filled < len(buf):
                    n = readinto(view[filled:])
                    if not n:
                        eof = True
                    else:
                        filled += n
                if filled == 0:
                    return
                start = 0
                for c in self._cdc.cut_buf(view[:filled]):
                    if not eof and start + self.max_size > filled:
                        break  # may end early only because the window ends: cut it again after refilling
                    yield bytes(c.data)
                    start += len(c.data)
                if eof and start == filled:
                    return
                buf[: filled - start] = bytes(view[start:filled])
                filled -= start
        finally:
            view.release()
