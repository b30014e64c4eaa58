"""Keys and authenticated encryption.

Key hierarchy (layered so that a write-only key can be added later, see ROADMAP):

* **master secret** — 64 random bytes, stored only wrapped by passphrase-derived keys (``keys/``).
* **subkeys** — derived from the master with HKDF-SHA256 and a distinct label each:
  ``data`` (root of every encryption session), ``lock`` (lock files), ``cache`` (MAC of the local files
  cache). The key of the keyed BLAKE3 blob ids is not derived: it is a random secret stored in the
  encrypted repository config (so that repositories made with ``--copy-chunker-params-from`` share it and
  deduplicate with each other); :class:`~safehold.engine.format.repository.Repository` installs it in
  ``MasterKeys.blob_id``. A future write-only key holds the id key, chunker seed and ``lock`` but
  receives session keys wrapped for a public key instead of ``data``.
* **session keys** — every writer draws a random 16-byte session id and derives its AES-256-GCM key
  from ``data`` and that id; nonces are a per-session counter, so a nonce never repeats under one key.

An *envelope* tells a reader how to obtain the session key. Format v1 knows one envelope kind
(``ENVELOPE_DERIVED``: key = HKDF(data subkey, session id)); the byte is there so that later kinds
(session key wrapped for a public key) fit without a format change.

Encrypted file layout (config, index, snapshot, lock files)::

    b"SHF1" | envelope kind (1) | session id (16) | nonce (12) | ciphertext | tag (16)

Blob ciphertexts inside packs are ``nonce (12) | ciphertext | tag (16)``, with associated data binding
the format version, blob type and blob id.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from safehold.errors import IntegrityError

FORMAT_VERSION = 1
FILE_MAGIC = b"SHF1"
ENVELOPE_DERIVED = 1
SESSION_ID_LEN = 16
NONCE_LEN = 12
TAG_LEN = 16
BLOB_OVERHEAD = NONCE_LEN + TAG_LEN
FILE_HEADER_LEN = len(FILE_MAGIC) + 1 + SESSION_ID_LEN
MASTER_LEN = 64


def hkdf(secret: bytes, label: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=b"safehold/v1/" + label).derive(
        secret
    )


@dataclass(frozen=True)
class MasterKeys:
    """The subkeys derived from one master secret."""

    master: bytes
    blob_id: bytes
    data: bytes
    lock: bytes
    cache: bytes

    @classmethod
    def from_master(cls, master: bytes) -> MasterKeys:
        if len(master) != MASTER_LEN:
            raise IntegrityError("master key has the wrong length")
        return cls(
            master=master,
            blob_id=hkdf(master, b"blob-id"),
            data=hkdf(master, b"data"),
            lock=hkdf(master, b"lock"),
            cache=hkdf(master, b"cache"),
        )

    @classmethod
    def generate(cls) -> MasterKeys:
        return cls.from_master(os.urandom(MASTER_LEN))

    def blob_id_of(self, data: bytes | memoryview) -> bytes:
        return blake3.blake3(data, key=self.blob_id, max_threads=1).digest()


def blob_ad(blob_type: int, blob_id: bytes) -> bytes:
    return bytes((FORMAT_VERSION, blob_type)) + blob_id


class Session:
    """One writer's encryption session: a random id, its derived key, and a nonce counter.

    Thread-safe. ``seal``/``open`` handle blob ciphertexts; ``seal_file``/``open_file`` whole files.
    """

    def __init__(self, root_key: bytes, session_id: bytes | None = None) -> None:
        self.session_id = session_id if session_id is not None else os.urandom(SESSION_ID_LEN)
        self.key = hkdf(root_key, b"session", salt=self.session_id)
        self._aead = AESGCM(self.key)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def partition(cls, session_id: bytes, key: bytes, part: int) -> Session:
        """The same session (id and key) for another sealer, with its own share of the nonce space.

        Nonces are 96-bit counters; partition ``part`` counts from ``part << 64``, so sealers that share
        one session (the helper processes of one writer) never use the same nonce. Partition 0 is the
        session created with :meth:`__init__`.
        """
        if not 0 < part < 1 << 32:
            raise ValueError("nonce partition out of range")
        s = cls.__new__(cls)
        s.session_id, s.key = session_id, key
        s._aead = AESGCM(key)
        s._counter = itertools.count((part << 64) + 1)
        s._lock = threading.Lock()
        return s

    def _nonce(self) -> bytes:
        with self._lock:
            n = next(self._counter)
        return n.to_bytes(NONCE_LEN, "big")

    def seal(self, plaintext: bytes | memoryview, ad: bytes) -> bytes:
        nonce = self._nonce()
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, sealed: bytes | memoryview, ad: bytes, what: str = "blob") -> bytes:
        if len(sealed) < BLOB_OVERHEAD:
            raise IntegrityError(f"{what} is too short to be a ciphertext")
        mv = memoryview(sealed)
        try:
            return self._aead.decrypt(bytes(mv[:NONCE_LEN]), mv[NONCE_LEN:], ad)
        except InvalidTag:
            raise IntegrityError(
                f"{what} failed authentication (damaged or not from this repository)"
            ) from None

    @property
    def envelope(self) -> bytes:
        return bytes((ENVELOPE_DERIVED,)) + self.session_id


class SessionCache:
    """Sessions for reading, keyed by envelope, so a reader derives each session key once."""

    def __init__(self, root_key: bytes) -> None:
        self._root = root_key
        self._sessions: dict[bytes, Session] = {}
        self._lock = threading.Lock()

    def for_envelope(self, envelope: bytes) -> Session:
        if len(envelope) != 1 + SESSION_ID_LEN or envelope[0] != ENVELOPE_DERIVED:
            raise IntegrityError("unknown key envelope (made by a newer safehold?)")
        with self._lock:
            s = self._sessions.get(envelope)
            if s is None:
                s = Session(self._root, envelope[1:])
                self._sessions[envelope] = s
            return s


def seal_file(root_key: bytes, plaintext: bytes, label: bytes) -> bytes:
    """Encrypt a whole repository file under a fresh session; ``label`` is bound as associated data."""
    s = Session(root_key)
    return FILE_MAGIC + s.envelope + s.seal(plaintext, b"file:" + label)


def open_file(sessions: SessionCache, data: bytes, label: bytes, what: str) -> bytes:
    if len(data) < FILE_HEADER_LEN + BLOB_OVERHEAD or data[:4] != FILE_MAGIC:
        raise IntegrityError(f"{what} is not a safehold file or is truncated")
    env = data[4:FILE_HEADER_LEN]
    return sessions.for_envelope(env).open(memoryview(data)[FILE_HEADER_LEN:], b"file:" + label, what)
