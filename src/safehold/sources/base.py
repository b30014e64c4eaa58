"""The Source contract: what produces a component's data, and restores it.

Glossary:

* **Component** — a named source with its settings (``app`` = files under /var/www/app, ``database`` =
  mysql askproai_db). In a snapshot each component owns one top-level folder named after it.
* **ComponentWriter** — what the engine hands a source at backup time: it writes files, byte strings and
  streams (dump programs' stdout) under the component's folder. Streams are chunked, deduplicated,
  compressed and encrypted as they arrive: no temporary copy on disk, bounded memory.
* **ComponentReader** — what the engine hands a source at restore time: read-only, verified access to
  the component's folder of one snapshot.

A source must *fail closed*: when its program exits non-zero, its dump is empty where data exists, its
tool is missing or its server unreachable, :meth:`Source.backup` raises
:class:`~safehold.errors.SourceError` (with the program's stderr in the message or log). The engine then
marks the component failed and never records the snapshot as good.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, cast

from pydantic import BaseModel, ConfigDict


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

    def restore_tree(self, path: str, target: Path, *, overwrite: str = "if-changed") -> None:
        """Recreate the file tree stored at ``path`` below ``target`` with its metadata."""


@dataclass
class SourceContext:
    """What a source may use besides its writer/reader: a log, a secret resolver, cancellation."""

    log: Callable[[str], None] = lambda _msg: None
    resolve_secret: Callable[[str], str] | None = None
    dry_run: bool = False
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RestoreReport:
    """What a restore did or (dry run) would do, for the plan and the final report."""

    component: str
    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class NoRestoreOptions(BaseModel):
    """The restore options of a kind that takes none."""

    model_config = ConfigDict(extra="forbid")


class Source(ABC):
    """A kind of data a component can hold: one subclass per kind, registered by ``kind`` in
    :mod:`safehold.sources.registry` (which returns ``type[Source]``, so strict mypy checks every plugin
    against this contract).

    ``Options`` is the pydantic model of the component's settings (the ``[components.NAME]`` table);
    ``RestoreOptions`` the model of what a restore may be told (``--set NAME.KEY=VALUE`` and the
    redirects), read from ``ctx.options`` by :meth:`restore_options`.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    RestoreOptions: ClassVar[type[BaseModel]] = NoRestoreOptions

    #: The validated settings; a subclass narrows the type (``options: MySQLOptions``).
    options: BaseModel

    def __init__(self, name: str, options: BaseModel | Mapping[str, Any]) -> None:
        self.name = name
        self.options = options if isinstance(options, self.Options) else self.Options.model_validate(options)

    @abstractmethod
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Write the component's data; return its metadata (counts, tool versions, statistics)."""

    @abstractmethod
    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Restore from ``snap``; with ``ctx.dry_run`` only plan. Raises SourceError on failure."""
