"""The repository: opening, keys, config, index, blob reads, snapshots.

Glossary (see also DESIGN.md):

* **Blob** — a chunk of file content (``DATA``) or an encoded folder (``TREE``), named by the keyed
  BLAKE3-256 of its plaintext, stored compressed and encrypted inside a pack.
* **Pack** — a file in ``data/`` holding many blobs of one type and an encrypted header listing them.
* **Index** — files in ``index/`` mapping blob ids to pack, offset and length.
* **Snapshot** — a file in ``snapshots/`` naming a root tree and describing one backup.

Writing blobs happens through :class:`safehold.engine.backup.writer.BlobWriter`; this module reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import zstandard

from safehold.backends.base import Backend, FileType, Handle
from safehold.engine.format.blobproof import decode_blob
from safehold.engine.format.crypto import MasterKeys, SessionCache, open_file, seal_file
from safehold.engine.format.index import BlobLocation, MasterIndex
from safehold.engine.format.index import preload as preload_index
from safehold.engine.format.keys import KeyFile, kdf_cost, require_passphrase, wrap_master
from safehold.engine.format.lock import Clock, Lock, acquire
from safehold.engine.format.pack import (
    BLOB_TYPE_NAMES,
    TRAILER_LEN,
    PackedBlob,
    decode_header,
    header_wires,
    parse_trailer,
)
from safehold.engine.format.snapshot import Snapshot, newest
from safehold.engine.memtune import release_memory
from safehold.engine.util import sha256_hex
from safehold.errors import (
    IntegrityError,
    NotFound,
    NotFoundError,
    RepositoryExists,
    RepositoryNotFound,
    UnsupportedRepository,
    WrongPassword,
)

REPO_VERSION = 1
#: Feature flags this safehold understands; a repository requiring any other is refused.
KNOWN_FEATURES: frozenset[str] = frozenset()
#: What a pack header decodes into (:meth:`Repository.read_pack_header` and its ``_wires`` twin).
_H = TypeVar("_H")

MIN_CHUNK = 512 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 8 * 1024 * 1024


@dataclass
class RepoConfig:
    """The repository's settings, stored encrypted in ``config``.

    ``chunker_seed`` and ``id_key`` (the key of the keyed BLAKE3 blob ids) are the *deduplication
    secrets*: two repositories sharing them (``init --copy-chunker-params-from``) cut and name content
    identically, so ``copy`` between them moves only missing blobs and copies trees unchanged.
    """

    id: str
    chunker_seed: int
    id_key: str
    min_size: int = MIN_CHUNK
    avg_size: int = AVG_CHUNK
    max_size: int = MAX_CHUNK
    compression_level: int = 3
    pack_size: int = 16 * 1024 * 1024
    features: list[str] = field(default_factory=list)
    created: str = ""
    version: int = REPO_VERSION

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RepoConfig:
        try:
            d = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"repository config is malformed: {exc}") from None
        if d.get("version") != REPO_VERSION:
            raise UnsupportedRepository(f"repository format version {d.get('version')} is not supported")
        unknown = set(d.get("features", [])) - KNOWN_FEATURES
        if unknown:
            raise UnsupportedRepository(f"repository requires unknown features: {', '.join(sorted(unknown))}")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as exc:
            raise IntegrityError(f"repository config is incomplete: {exc}") from None

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"chunker_seed": "(secret)", "id_key": "(secret)"}


#: Extra reads of a file that came back damaged (a short or garbled read from flaky storage) before it
#: is reported as damaged.
REREADS = 2


def load_checked(backend: Backend, h: Handle, ok: Callable[[bytes], bool]) -> tuple[bytes, bool]:
    """Load ``h``; while ``ok`` rejects the bytes, read again (at most :data:`REREADS` times).

    Returns the last bytes read and whether ``ok`` accepted them.
    """
    raw = backend.load(h)
    for _ in range(REREADS):
        if ok(raw):
            return raw, True
        raw = backend.load(h)
    return raw, ok(raw)


def _named_by_hash(name: str) -> Callable[[bytes], bool]:
    return lambda raw: sha256_hex(raw) == name


def _find_key(backend: Backend, password: str) -> tuple[str, bytes]:
    """The key file that opens with ``password`` and the master secret it wraps.

    Key files are tried cheapest first (a planted expensive one costs time only when no other opens);
    damaged ones and ones with parameters outside this version's bounds are skipped and named when no
    key opens.
    """
    require_passphrase(password)
    names = [fi.name for fi in backend.list(FileType.KEY)]
    if not names:
        raise IntegrityError("repository has no key files", hint="The repository is damaged or incomplete.")
    unusable: list[str] = []
    usable: list[tuple[int, str, KeyFile]] = []
    for name in sorted(names):
        raw, intact = load_checked(backend, Handle(FileType.KEY, name), _named_by_hash(name))
        if not intact:
            unusable.append(f"{name[:16]} (damaged)")
            continue
        try:
            kf = KeyFile.from_bytes(raw)
        except (IntegrityError, UnsupportedRepository) as exc:
            unusable.append(f"{name[:16]} ({exc.message})")
            continue
        usable.append((kdf_cost(kf.kdf, kf.params), name, kf))
    for k, (_cost, name, kf) in enumerate(sorted(usable, key=lambda x: (x[0], x[1]))):
        master = _unwrap_preloading(kf, password) if k == 0 else kf.unwrap(password)
        if master is not None:
            return name, master
    if unusable:
        raise IntegrityError(
            f"no intact key opens with this passphrase; unusable key file(s): {'; '.join(unusable)}",
            hint="Try another passphrase of this repository, or put back the keys/ folder from a copy of it.",
        )
    raise WrongPassword("wrong passphrase: no key in the repository opens with it")


def _unwrap_preloading(kf: KeyFile, password: str) -> bytes | None:
    """``kf.unwrap(password)``, with the index's numpy imported meanwhile: the key derivation (Argon2id,
    a few hundred ms by design) runs in a thread without the interpreter lock, so the other core
    does the import. Not when the key was derived ahead (``safehold.cli.boot``): the unwrap is then quick,
    and a small index needs no numpy at all."""
    if kf.derived_ahead(password):
        return kf.unwrap(password)
    box: list[bytes | None] = []
    failure: list[BaseException] = []

    def derive() -> None:
        try:
            box.append(kf.unwrap(password))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=derive, name="safehold-kdf", daemon=True)
    thread.start()
    try:
        preload_index()
    finally:
        thread.join()
    if failure:
        raise failure[0]
    return box[0]


def _open_config(backend: Backend, keys: MasterKeys) -> RepoConfig:
    sessions = SessionCache(keys.data)

    def ok(raw: bytes) -> bool:
        try:
            open_file(sessions, raw, b"config", "config")
            return True
        except IntegrityError:
            return False

    raw, _ = load_checked(backend, Handle(FileType.CONFIG), ok)
    return RepoConfig.from_bytes(open_file(sessions, raw, b"config", "config"))


class Repository:
    """An open repository. Thread-safe for concurrent reads."""

    def __init__(self, backend: Backend, keys: MasterKeys, config: RepoConfig, key_name: str) -> None:
        self.backend = backend
        self.keys = dataclasses.replace(keys, blob_id=bytes.fromhex(config.id_key))
        self.config = config
        self.key_name = key_name
        self.sessions = SessionCache(keys.data)
        self.index = MasterIndex()
        self.index_files: set[str] = set()
        self._index_loaded = False
        self._local = threading.local()
        #: seconds :meth:`lock` waits for a conflicting lock to go away unless told (``--lock-wait``)
        self.lock_wait = 0.0
        #: where warnings about damage met on the way go (the CLI's stderr); None: nowhere
        self.report: Callable[[str], None] | None = None

    # ---- creation / opening -------------------------------------------------------------------
    @classmethod
    def init(cls, backend: Backend, password: str, *, chunker_from: RepoConfig | None = None) -> Repository:
        if backend.exists():
            raise RepositoryExists(f"a repository already exists at {backend.properties.location}")
        backend.create()
        keys = MasterKeys.generate()
        cfg = RepoConfig(
            id=os.urandom(16).hex(),
            chunker_seed=int.from_bytes(os.urandom(8), "big") >> 1,
            id_key=os.urandom(32).hex(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if chunker_from is not None:
            cfg.chunker_seed = chunker_from.chunker_seed
            cfg.id_key = chunker_from.id_key
            cfg.min_size, cfg.avg_size, cfg.max_size = (
                chunker_from.min_size,
                chunker_from.avg_size,
                chunker_from.max_size,
            )
        raw = wrap_master(keys.master, password).to_bytes()
        key_name = sha256_hex(raw)
        backend.save(Handle(FileType.KEY, key_name), raw)
        backend.save(Handle(FileType.CONFIG), seal_file(keys.data, cfg.to_bytes(), b"config"))
        return cls(backend, keys, cfg, key_name)

    @classmethod
    def open(cls, backend: Backend, password: str) -> Repository:
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.properties.location}")
        key_name, master = _find_key(backend, password)
        keys = MasterKeys.from_master(master)
        return cls(backend, keys, _open_config(backend, keys), key_name)

    def lock(
        self, *, exclusive: bool, operation: str, wait: float | None = None, clock: Clock | None = None
    ) -> Lock:
        """Take a shared or exclusive lock (see :mod:`safehold.engine.format.lock`), waiting up to ``wait`` seconds
        (default :attr:`lock_wait`) for conflicting locks to go away; ``clock`` is for tests."""
        return acquire(
            self.backend,
            self.keys.lock,
            SessionCache(self.keys.lock),
            exclusive=exclusive,
            operation=operation,
            wait=self.lock_wait if wait is None else wait,
            clock=clock,
        )

    # ---- keys ------------------------------------------------------------------------------------
    def add_key(self, password: str) -> str:
        raw = wrap_master(self.keys.master, password).to_bytes()
        name = sha256_hex(raw)
        self.backend.save(Handle(FileType.KEY, name), raw)
        return name

    def list_keys(self, unusable: list[tuple[str, str]] | None = None) -> list[tuple[str, KeyFile]]:
        """The key files, oldest first. A malformed one, or one with parameters outside this version's
        bounds, raises, or with ``unusable`` given is appended there as ``(name, reason)``."""
        out = []
        for fi in self.backend.list(FileType.KEY):
            try:
                out.append((fi.name, KeyFile.from_bytes(self.backend.load(Handle(FileType.KEY, fi.name)))))
            except (IntegrityError, UnsupportedRepository) as exc:
                if unusable is None:
                    raise
                unusable.append((fi.name, exc.message))
        return sorted(out, key=lambda x: x[1].created)

    # ---- files -----------------------------------------------------------------------------------
    def load_file(self, t: FileType, name: str) -> bytes:
        """Load an encrypted file, check its name is the SHA-256 of its bytes, and decrypt it."""
        raw, intact = load_checked(self.backend, Handle(t, name), _named_by_hash(name))
        if not intact:
            raise IntegrityError(f"{t.value}/{name[:16]} does not match its name (damaged)")
        return open_file(self.sessions, raw, t.value.encode(), f"{t.value}/{name[:16]}")

    def save_file(self, t: FileType, plaintext: bytes) -> str:
        raw = seal_file(self.keys.data, plaintext, t.value.encode())
        name = sha256_hex(raw)
        self.backend.save(Handle(t, name), raw)
        return name

    # ---- index -----------------------------------------------------------------------------------
    def load_index(self, *, errors: list[str] | None = None) -> None:
        """Load every index file (once). Damaged index files raise, or are reported into ``errors``."""
        if self._index_loaded:
            return
        for fi in self.backend.list(FileType.INDEX):
            try:
                self.index.add_index_file(self.load_file(FileType.INDEX, fi.name))
                self.index_files.add(fi.name)
            except (IntegrityError, NotFoundError, ValueError) as exc:
                if errors is None:
                    raise IntegrityError(f"index file {fi.name[:16]} is damaged: {exc}") from None
                errors.append(f"index file {fi.name[:16]} is damaged: {exc}")
        self.index.compact()
        self._index_loaded = True
        release_memory()  # the decoded index files were many small, now dead, objects

    def read_pack_header(self, pack_id: str, size: int | None = None) -> tuple[bytes, list[PackedBlob]]:
        """Return ``(envelope, entries)`` of a pack, read from its trailer and header."""
        return self._read_header(pack_id, size, decode_header)

    def read_pack_header_wires(self, pack_id: str, size: int | None = None) -> tuple[bytes, list[list[Any]]]:
        """:meth:`read_pack_header` with the entries as their checked wire lists (``header_wires``)."""
        return self._read_header(pack_id, size, header_wires)

    def _read_header(
        self, pack_id: str, size: int | None, decode: Callable[[SessionCache, bytes, bytes, int], _H]
    ) -> tuple[bytes, _H]:
        h = Handle(FileType.DATA, pack_id)
        if size is None:
            size = self.backend.stat(h).size
        if size < TRAILER_LEN:
            raise IntegrityError(f"pack {pack_id[:16]} is too short")
        try:
            envelope, hlen = parse_trailer(self.backend.load(h, size - TRAILER_LEN, TRAILER_LEN), size)
            header_ct = self.backend.load(h, size - TRAILER_LEN - hlen, hlen)
            return envelope, decode(self.sessions, envelope, header_ct, size)
        except ValueError as exc:
            raise IntegrityError(f"pack {pack_id[:16]}: {exc}") from None

    # ---- blobs -----------------------------------------------------------------------------------
    def decompressor(self) -> zstandard.ZstdDecompressor:
        """This thread's zstd decompressor (they are not thread-safe)."""
        d: zstandard.ZstdDecompressor | None = getattr(self._local, "dctx", None)
        if d is None:
            d = zstandard.ZstdDecompressor()
            self._local.dctx = d
        return d

    def decode_blob(
        self, blob_id: bytes, loc: BlobLocation | PackedBlob, envelope: bytes, sealed: bytes | memoryview
    ) -> bytes:
        """Decrypt, decompress and verify one blob; raises IntegrityError on any mismatch."""
        return decode_blob(
            self.sessions, self.keys.blob_id, self.decompressor(), blob_id, loc, envelope, sealed
        )

    def load_blob(self, blob_type: int, blob_id: bytes) -> bytes:
        self.load_index()
        loc = self.index.lookup(blob_id)
        if loc is None or loc.type != blob_type:
            raise IntegrityError(
                f"{BLOB_TYPE_NAMES[blob_type]} blob {blob_id.hex()[:16]} is not in the index"
            )
        sealed = self.backend.load(Handle(FileType.DATA, loc.pack_id.hex()), loc.offset, loc.length)
        return self.decode_blob(blob_id, loc, loc.envelope, sealed)

    # ---- snapshots -------------------------------------------------------------------------------
    def save_snapshot(self, snap: Snapshot) -> str:
        snap.id = self.save_file(FileType.SNAPSHOT, snap.to_bytes())
        return snap.id

    def load_snapshot(self, snap_id: str) -> Snapshot:
        return Snapshot.from_bytes(self.load_file(FileType.SNAPSHOT, snap_id), snap_id)

    def iter_snapshots(self, errors: list[str] | None = None) -> Iterator[Snapshot]:
        """Every snapshot, with ``written`` from the storage's listing (see :mod:`safehold.engine.format.snapshot`)."""
        for fi in self.backend.list(FileType.SNAPSHOT):
            try:
                snap = self.load_snapshot(fi.name)
                snap.written = fi.mtime
                yield snap
            except (IntegrityError, NotFoundError) as exc:
                if errors is None:
                    raise
                errors.append(f"snapshot {fi.name[:16]}: {exc}")

    def snapshots(self, damaged: list[str] | None = None) -> list[Snapshot]:
        """Every snapshot, oldest first; with ``damaged`` given, unreadable snapshot files are listed there
        instead of raising."""
        return sorted(self.iter_snapshots(errors=damaged), key=lambda s: (s.datetime, s.id))

    def _intact_snapshots(self) -> list[Snapshot]:
        """Every readable snapshot; each damaged snapshot file is reported (:attr:`report`) and skipped, so
        that one damaged file does not stop 'latest' from finding the intact ones."""
        damaged: list[str] = []
        snaps = list(self.iter_snapshots(errors=damaged))
        for line in damaged:
            if self.report is not None:
                self.report(f"damaged snapshot file skipped: {line} (see 'safehold check')")
        return snaps

    def latest(
        self,
        accept: Callable[[Snapshot], bool] | None = None,
        *,
        none: NotFound | None = None,
        now: datetime | None = None,
    ) -> Snapshot:
        """What ``latest`` means everywhere (:func:`~safehold.engine.format.snapshot.newest`): the newest snapshot
        by time (of those ``accept`` takes) that is not dated in the future of this clock. Raises ``none``
        (or a default NotFound) when there is none; snapshots skipped for their future time are named."""
        best, future = newest(self._intact_snapshots(), accept, now=now)
        if best is not None:
            return best
        if future:
            ids = ", ".join(f"{s.short_id} ({s.time})" for s in future[:3])
            raise NotFound(
                f"'latest' found only snapshots dated in the future of this machine's clock: {ids}",
                hint="Check the clocks (this one and the writer's); to use such a snapshot, name it by its id.",
            )
        raise none or NotFound("the repository has no snapshots yet", hint="Run 'safehold backup' first.")

    def find_snapshot(self, ref: str) -> Snapshot:
        """Resolve ``latest`` (:meth:`latest`), a full id or a unique id prefix (at least 4 characters).

        A ref that matches no id of this repository is looked up among the ids the snapshots were copied
        from (their ``original``, kept by ``copy`` and off-site copies), so the id a backup printed also
        names its copy in the off-site repository.
        """
        if ref == "latest":
            return self.latest()
        names = [fi.name for fi in self.backend.list(FileType.SNAPSHOT) if fi.name.startswith(ref)]
        if not names and len(ref) >= 4:  # its own id first; else the id it was copied from
            names = [s.id for s in self._intact_snapshots() if s.original and s.original.startswith(ref)]
        if len(names) == 1 and len(ref) >= 4:
            return self.load_snapshot(names[0])
        if len(names) > 1:
            raise NotFound(f"snapshot id prefix {ref!r} is ambiguous", hint="Give more characters of the id.")
        raise NotFound(f"no snapshot {ref!r} in the repository")
