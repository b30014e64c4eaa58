"""An in-memory ComponentWriter/ComponentReader pair for testing sources without a repository.

It follows the contract of ``safehold.sources.base`` exactly (streams are consumed in bounded pieces and
stored; trees are copied with their file contents), so that a source tested here behaves the same on the
real engine. The engine-backed implementation has its own conformance tests.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from safehold.sources.component import StreamStats


class MemoryComponent:
    """Both sides of one component folder, kept in a dict of path -> bytes (and stored trees)."""

    def __init__(self, scratch: Path | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.trees: dict[str, Path] = {}
        self.lines: list[str] = []
        self._scratch = scratch

    # writer side
    def add_bytes(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        self._check_new(path)
        self.files[path] = bytes(data)
        self.modes[path] = mode

    def add_stream(self, path: str, stream: IO[bytes], *, mode: int = 0o600) -> StreamStats:
        self._check_new(path)
        h = hashlib.sha256()
        parts: list[bytes] = []
        while True:
            block = stream.read(1 << 20)
            if not block:
                break
            h.update(block)
            parts.append(block)
        data = b"".join(parts)
        self.files[path] = data
        self.modes[path] = mode
        return StreamStats(size=len(data), sha256=h.hexdigest())

    def add_tree(
        self,
        path: str,
        root: Path,
        *,
        excludes: list[str] | None = None,
        one_file_system: bool = False,
    ) -> None:
        if self._scratch is None:
            raise RuntimeError("MemoryComponent needs a scratch folder to store trees")
        self._check_new(path)
        dest = self._scratch / "trees" / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, dest, symlinks=True)
        self.trees[path] = dest

    def log(self, message: str) -> None:
        self.lines.append(message)

    # reader side
    def listdir(self, path: str = "") -> list[str]:
        prefix = f"{path.rstrip('/')}/" if path else ""
        names = {
            p[len(prefix) :].split("/", 1)[0] for p in [*self.files, *self.trees] if p.startswith(prefix)
        }
        return sorted(names)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.trees or bool(self.listdir(path))

    def read_bytes(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    def open_stream(self, path: str) -> Iterator[bytes]:
        for part in self.stream_parts(path):
            yield part()

    def stream_parts(self, path: str) -> list[Callable[[], bytes]]:
        data = self.read_bytes(path)
        return [functools.partial(bytes, data[i : i + (1 << 20)]) for i in range(0, len(data), 1 << 20)]

    def in_the_way(
        self, path: str, target: Path, *, root: Path | None = None, force: bool = False
    ) -> list[str]:
        return []

    def restore_tree(
        self, path: str, target: Path, *, overwrite: str = "if-changed", root: Path | None = None
    ) -> None:
        src = self.trees[path]
        target.mkdir(parents=True, exist_ok=True)
        for entry in os.listdir(src):
            s, d = src / entry, target / entry
            if s.is_dir() and not s.is_symlink():
                shutil.copytree(s, d, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(s, d, follow_symlinks=False)

    def _check_new(self, path: str) -> None:
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"bad component path {path!r}")
        if path in self.files or path in self.trees:
            raise ValueError(f"duplicate component path {path!r}")
