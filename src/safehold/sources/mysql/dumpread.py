"""Byte ranges of a stored dump, read forward by the scan and by each connection of :mod:`.parallel`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from safehold.errors import SourceError


class Source:
    """The dump, read by the scan and by every lane: streams from ``source()``, or ``parts`` (a loader
    per stored chunk), which the scan loads one after the other, noting their sizes, and a lane only
    where it reads: a chunk that ends before the lane's next statement is passed over unread (a lane
    reads about its share of the dump instead of all of it)."""

    def __init__(self, source: Callable[[], Iterator[bytes]], parts: Sequence[Callable[[], bytes]] | None):
        self.source, self.parts = source, parts
        self.sizes: list[int] = []  # of the parts the scan has loaded (appended before it reads them)

    def for_scan(self) -> Iterator[bytes]:
        return self.source() if self.parts is None else self._scanned(self.parts)

    def _scanned(self, parts: Sequence[Callable[[], bytes]]) -> Iterator[bytes]:
        for part in parts:
            chunk = part()
            self.sizes.append(len(chunk))
            yield chunk

    def reader(self) -> Reader:
        return Reader(self.source() if self.parts is None else None, self.parts, self.sizes)


class Reader:
    """Byte ranges of a stream read forward (a chunk at a time)."""

    def __init__(
        self,
        stream: Iterator[bytes] | None,
        parts: Sequence[Callable[[], bytes]] | None = None,
        sizes: list[int] | None = None,
    ) -> None:
        self.stream = stream
        self.parts, self.sizes, self.j = parts, ([] if sizes is None else sizes), 0
        self.chunk = b""
        self.start = 0  # the offset of ``chunk``

    def _advance(self, a: int) -> bool:
        """Move to the next chunk, past the parts that end at or before ``a`` without loading them;
        False (at the end of the stream) when there is none."""
        end = self.start + len(self.chunk)
        if self.parts is None:
            assert self.stream is not None
            nxt = next(self.stream, None)
            if nxt is None:
                return False
            self.start, self.chunk = end, nxt
            return True
        parts, sizes = self.parts, self.sizes
        while self.j < len(parts) and self.j < len(sizes) and end + sizes[self.j] <= a:
            end += sizes[self.j]
            self.j += 1
        if self.j == len(parts):
            self.start, self.chunk = end, b""
            return False
        chunk = parts[self.j]()
        if self.j < len(sizes) and len(chunk) != sizes[self.j]:
            raise SourceError(
                f"part {self.j} of the dump read {len(chunk)} bytes, {sizes[self.j]} when it was scanned",
                hint="The repository gave different bytes for the same file: run 'safehold check'.",
            )
        self.j += 1
        self.start, self.chunk = end, chunk
        return True

    def read(self, a: int, b: int, what: str) -> bytes:
        pieces = []
        while True:
            end = self.start + len(self.chunk)
            if a < end and b > self.start:
                pieces.append(self.chunk[max(a, self.start) - self.start : min(b, end) - self.start])
            if b <= end:
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if not self._advance(a):
                raise SourceError(f"the dump ended inside {what}")

    def rest(self, a: int) -> Iterator[bytes]:
        """Everything from offset ``a`` to the end (``a`` not before the current chunk)."""
        while True:
            end = self.start + len(self.chunk)
            if end > a:
                yield self.chunk[max(a, self.start) - self.start :]
            if not self._advance(a):
                break
        self.start, self.chunk = self.start + len(self.chunk), b""

    def close(self) -> None:
        close(self.stream)


def close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()
