"""The storage contract every backend implements.

A repository is a handful of named files in a few folders. A backend stores and returns those files; it
knows nothing about encryption, packs or snapshots.

Guarantees a backend must give (the conformance suite in ``tests/backends`` checks each one):

* **Atomic visibility.** After :meth:`Backend.save` returns, the whole file is visible under its name;
  before that, nothing (no partial file) is visible under that name. A failed or interrupted save leaves
  either nothing or the previous complete file. Temporary names never appear in :meth:`Backend.list`.
* **Read-after-write.** A :meth:`Backend.load` or :meth:`Backend.stat` issued after :meth:`Backend.save`
  returned sees the saved bytes.
* **Listing may lag** for a short time on eventually consistent object stores (a file just saved may be
  missing from :meth:`Backend.list`, a file just removed may still be listed). Callers tolerate that:
  nothing in safehold deletes a file because it was absent from one listing.
* **Save is not an overwrite** except for :attr:`FileType.LOCK` files: all other files are immutable and
  named by the SHA-256 of their bytes, so saving an existing name with the same bytes is harmless.
* **Load honours byte ranges** exactly, and raises :class:`~safehold.errors.NotFoundError` for a missing
  file (never returns empty bytes instead).
* **Errors** are :class:`~safehold.errors.BackendError`; a transient one sets ``transient=True`` so that
  the retry wrapper may try again.

Names are checked: anything but ``config`` must match ``[A-Za-z0-9_-]{1,128}`` (data packs at least 2
characters; ``bootstrap`` files are plain file names: ``[A-Za-z0-9][A-Za-z0-9._+-]{0,199}``), else the
backend raises ValueError (a programming error, never a storage failure).

Storage classes (cold data)
---------------------------

Object stores offer cheap archive classes (S3 GLACIER, DEEP_ARCHIVE) whose objects cannot be read without
a thaw. Only packs holding file *contents* may go there: tree packs, index, snapshots, keys and config must
stay readable at once, or ``ls``, ``check`` and planning a restore would need a thaw first. The engine says
which packs may go cold with the :attr:`Handle.cold` hint: ``save(Handle(FileType.DATA, name, cold=True),
data)``. It is a hint, not part of the file's identity (it takes no part in equality, hashing or ordering),
so wrappers pass it through unchanged and backends without storage classes ignore it. The default is hot:
an engine that never sets it gets a repository that is always readable. A backend applies its configured
cold class (S3: the ``storage_class`` option) only to ``DATA`` handles with ``cold=True``. Loading a file
that sits in an archive class raises :class:`~safehold.errors.ColdStorageError` with the thaw steps.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from safehold.errors import BackendError


class FileType(enum.Enum):
    """The kinds of repository files and the folder each lives in."""

    CONFIG = "config"
    KEY = "keys"
    DATA = "data"
    INDEX = "index"
    SNAPSHOT = "snapshots"
    LOCK = "locks"
    #: The audit log's records (``safehold.operations.observe.audit``): one encrypted, immutable file per
    #: operation, named by its hash like snapshots. Older versions ignore the folder.
    AUDIT = "audit"
    #: Records of drills and checks (encrypted, named by their hash like snapshots), so that any host and
    #: ``status`` see when the repository was last proven (``safehold.operations.observe.results``).
    RESULT = "results"
    #: Not part of the repository format: the unencrypted wheels a bare host installs safehold from
    #: (``safehold.operations.backup.bootstrap``). Names are file names (``safehold-1.0-py3-none-any.whl``).
    BOOTSTRAP = "bootstrap"

    @property
    def folder(self) -> str:
        return self.value


@dataclass(frozen=True, order=True)
class Handle:
    """Names one repository file: its type and its name (hex for everything but ``config``)."""

    type: FileType
    name: str = ""
    #: Hint for :meth:`Backend.save`: this data pack holds only file contents and may be stored in a cold
    #: (archive) storage class. Not part of the identity; see "Storage classes" in the module docstring.
    cold: bool = field(default=False, compare=False)

    def path(self) -> str:
        """The relative path of the file in a repository tree (data packs fan out by 2 hex digits)."""
        if self.type is FileType.CONFIG:
            return "config"
        if self.type is FileType.DATA:
            return f"data/{self.name[:2]}/{self.name}"
        return f"{self.type.folder}/{self.name}"

    def __str__(self) -> str:
        return self.path()


@dataclass(frozen=True)
class FileInfo:
    """What :meth:`Backend.stat` and :meth:`Backend.list` return for one file."""

    name: str
    size: int
    #: when the storage says the file was last written (seconds since the epoch); None when unknown.
    #: Set by list() (stat() may leave it out); the storage, not a writer's claim, decides it.
    mtime: float | None = None


@dataclass(frozen=True)
class BackendProperties:
    """Facts about a backend that its users may need.

    ``connections`` is how many requests the backend serves well at once (the concurrency limit);
    ``local`` says whether loads are cheap random reads; ``has_atomic_replace`` whether saving an
    existing lock file replaces it atomically.
    """

    location: str
    connections: int = 2
    local: bool = False
    has_atomic_replace: bool = True
    extra: dict[str, str] = field(default_factory=dict)


class TransientBackendError(BackendError):
    """A failure worth retrying (timeout, connection reset, 5xx, SlowDown)."""

    transient = True


@runtime_checkable
class Backend(Protocol):
    """Where repository files live. See the module docstring for the guarantees."""

    @property
    def properties(self) -> BackendProperties: ...

    def create(self) -> None:
        """Prepare an empty location for a new repository (folders, bucket prefix). Idempotent."""

    def exists(self) -> bool:
        """True when a repository ``config`` file is present."""

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        """Store ``data`` under ``h`` atomically and durably (see the module docstring)."""

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes from ``offset`` (all the rest when ``length`` is None).

        Raises NotFoundError when the file does not exist, BackendError when fewer bytes than asked for
        exist.
        """

    def stat(self, h: Handle) -> FileInfo:
        """Return the file's size; raises NotFoundError when the file does not exist."""

    def list(self, t: FileType) -> Iterator[FileInfo]:
        """Yield every file of type ``t`` (no temporary files); order unspecified."""

    def remove(self, h: Handle) -> None:
        """Delete the file; removing a missing file is not an error."""

    def close(self) -> None:
        """Release connections. The backend is not used afterwards."""


#: Archive storage classes whose objects need a thaw (a temporary readable copy) before they can be read.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


@dataclass(frozen=True)
class ThawState:
    """Where one archived file stands: ``archived`` (a thaw is needed), ``restoring`` (requested, not
    readable yet), ``restored`` (a readable copy exists until ``expires``) or ``readable`` (not archived)."""

    storage_class: str
    state: str
    expires: str | None = None

    @property
    def readable(self) -> bool:
        return self.state in ("restored", "readable")


@runtime_checkable
class SupportsThaw(Protocol):
    """Optional: a backend whose files may sit in archive storage classes (S3 GLACIER, DEEP_ARCHIVE).

    A thaw is asynchronous and takes minutes to days depending on the class and the retrieval tier; a
    repeated request for a file being thawed is harmless. See ``safehold.operations.restore.thaw``.
    """

    def archived(self, t: FileType) -> dict[str, str]:
        """Files of type ``t`` stored in an archive class: name -> storage class (one listing; whether a
        thawed copy exists is not known from it)."""

    def thaw_state(self, h: Handle) -> ThawState:
        """The file's storage class and thaw state (one request)."""

    def thaw(self, h: Handle, *, tier: str, days: int) -> ThawState:
        """Request a readable copy kept for ``days`` days, retrieved at ``tier`` (Expedited, Standard,
        Bulk); returns the state after the request."""


@runtime_checkable
class SupportsScratch(Protocol):
    """Optional: a backend that can open a scratch sub-location of itself (``backend validate`` uses it).

    ``name`` is one path component (``[A-Za-z0-9._-]``, not ``.`` or ``..``); the sub-location is a folder
    or key prefix inside this backend's location that no repository listing includes.
    """

    def scratch(self, name: str) -> Backend:
        """A backend on the (new, empty) sub-location ``name``; call its ``create()`` before use."""

    def drop_scratch(self, name: str) -> None:
        """Remove the sub-location's empty folders once its files were removed; missing is not an error."""
