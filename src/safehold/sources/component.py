"""A component's folder in a snapshot, as the engine hands it to a source.

* **ComponentWriter** — at backup time: writes files, byte strings and streams (dump programs' stdout)
  under the component's folder. Streams are chunked, deduplicated, compressed and encrypted as they
  arrive: no temporary copy on disk, bounded memory. :func:`stream_of` turns generated blocks into such a
  stream.
* **ComponentReader** — at restore time: read-only, verified access to the component's folder of one
  snapshot; :func:`walk_files` lists every file of it.

The engine implements both (operations hand them over); sources only call them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast


@dataclass
class StreamStats:
    """What :meth:`ComponentWriter.add_stream` saw: bytes written and their SHA-256."""

    size: int
    sha256: str


class ComponentWriter(Protocol):
    """Write side of one component's folder in a snapshot being made. Paths are relative, '/'-separated."""

    def add_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Store a small file (metadata, exports, text reports)."""

    def add_stream(self, path: str, stream: IO[bytes], *, mode: int = 0o600) -> StreamStats:
        """Store everything read from ``stream`` until EOF as one file; returns its size and digest."""

    def add_tree(
        self,
        path: str,
        root: Path,
        *,
        excludes: list[str] | None = None,
        one_file_system: bool = False,
    ) -> None:
        """Store the file tree at ``root`` (with all metadata) under ``path``."""

    def log(self, message: str) -> None:
        """Append a line to the snapshot's backup log (never a secret)."""


class IterStream:
    """A readable binary stream over an iterator of byte blocks (for ``add_stream`` of generated data)."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._it = iter(blocks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._buf + b"".join(self._it)
        while len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def stream_of(blocks: Iterable[bytes]) -> IO[bytes]:
    """:class:`IterStream` over ``blocks``, typed as the binary stream ``add_stream`` takes."""
    return cast(IO[bytes], IterStream(blocks))


class ComponentReader(Protocol):
    """Read side of one component's folder in an existing snapshot."""

    def listdir(self, path: str = "") -> list[str]:
        """Names in the folder ``path`` (empty for the component's root)."""

    def exists(self, path: str) -> bool: ...

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a (small) file, verified."""

    def open_stream(self, path: str) -> Iterator[bytes]:
        """The content of a file as verified chunks, in order, for streaming into a restore program."""

    def stream_parts(self, path: str) -> list[Callable[[], bytes]]:
        """The chunks :meth:`open_stream` yields, as one function each that reads and verifies it when
        called: for a reader that passes over what it does not need."""

    def restore_tree(
        self, path: str, target: Path, *, overwrite: str = "if-changed", root: Path | None = None
    ) -> None:
        """Recreate the file tree stored at ``path`` below ``target`` with its metadata. Nothing below
        ``target`` is followed if it is a symlink (one where a folder goes is refused, or replaced with
        ``overwrite="always"``); ``root``: a folder above ``target`` from which the folders down to it
        are walked the same way, except for symlinks owned by root."""

    def in_the_way(
        self, path: str, target: Path, *, root: Path | None = None, force: bool = False
    ) -> list[str]:
        """For a plan: the symlinks or files where :meth:`restore_tree` would need a folder (each
        refused, or with ``force`` replaced), as warnings."""

    def verify_tree(self, path: str, target: Path) -> list[str]:
        """Every difference between ``target`` and the tree stored at ``path`` (entries, types, modes,
        links, times, owners as root, every byte); empty when identical. For drills."""


def walk_files(snap: ComponentReader, path: str = "") -> Iterator[str]:
    """Every file below ``path`` of a component's folder (depth first, sorted), as relative paths."""
    for name in sorted(snap.listdir(path)):
        rel = f"{path}/{name}" if path else name
        try:
            snap.listdir(rel)
        except NotADirectoryError:
            yield rel
        else:
            yield from walk_files(snap, rel)
