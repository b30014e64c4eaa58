"""Content-defined chunking (FastCDC, seeded per repository) of buffers, files and streams.

pyfastcdc cuts fast (several GB/s), but its stream chunker allocates and zeroes a fresh 16 MiB buffer
for every stream: for thousands of 1 MiB files that is gigabytes of memset and page faults. This
:class:`Chunker` keeps one window buffer for all streams of its owner (one thread), and cuts whole
buffers (files that fit in one read) without any copy.

A chunk's cut depends only on its own bytes (at most ``max_size`` of them): a cut found before the end
of the bytes at hand is final, and so is a chunk of ``max_size``. Only the last chunk of a window may
end merely because the window does; it moves to the front and is cut again after the window is
refilled. The window is ``max_size`` plus ``max_size // 4``, so every refill reads at least that much.
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

    def stream(self, readinto: Callable[[memoryview], int | None]) -> Iterator[memoryview]:
        """The chunks of everything ``readinto`` delivers until it returns 0 (end of input).

        Each chunk is a writable view into the window, valid only until the next one is asked for: a
        consumer that keeps a chunk copies it (see :meth:`BlobWriter.submit`). ``readinto`` is a file's
        ``readinto`` (a short read is not taken for the end).
        """
        if self._window is None:
            self._window = bytearray(self.max_size + max(1, self.max_size // 4))
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
                    n = len(c.data)
                    if not eof and start + n == filled and n < self.max_size:
                        break  # may end only because the window ends: cut it again after refilling
                    yield view[start : start + n]
                    start += n
                if eof and start == filled:
                    return
                view[: filled - start] = view[start:filled]  # memoryview copies overlaps like memmove
                filled -= start
        finally:
            view.release()
