"""Key files: the master secret wrapped by passphrase-derived keys.

A key file (``keys/<sha256>``) is JSON::

    {"version": 1, "kdf": "argon2id", "params": {"t": 3, "m": 65536, "p": 4}, "salt": "<hex>",
     "created": "...", "host": "...", "user": "...", "data": "<hex: nonce | AES-GCM(master) | tag>"}

Several key files may wrap the same master secret (several passphrases). A key file is immutable; a
passphrase change writes a new key file and removes the old one.

**Parameters of new keys**: Argon2id with RFC 9106's second recommended option, t=3 passes, m=64 MiB,
p=4 lanes (:data:`DEFAULT_KDF_PARAMS`; the README gives the measured unlock time). A test suite (and a
benchmark that does not measure key derivation) may lower them for its own process with
:func:`use_kdf_params_for_new_keys`: a function call, not a setting, so no environment variable,
configuration file or command-line option can make a production job create weak keys by accident.

**Parameters read from a key file are bounded** (:data:`ARGON2_LIMITS`, :data:`SCRYPT_LIMITS`, salt
:data:`SALT_LEN`): anyone who can write to the storage can put a key file there, and unbounded
parameters would let it hang every unlock or exhaust memory. At the maxima one attempt costs 1 GiB and
about 20 s here; keys are tried cheapest first, so a planted expensive key costs time only when the
passphrase is wrong anyway. The minima (t=1, 1 MiB, p=1) are what the test suite creates. They protect
nobody and need not: a key file only opens with its passphrase, so whoever can write storage cannot
lower the cost of an existing key (changing its parameters changes the derived key, and the master no
longer decrypts); how hard a passphrase is to guess is decided when its key is created, above.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from safehold.errors import IntegrityError, UnsupportedRepository, UsageError

# This module imports neither cryptography nor hashlib (OpenSSL) at its top, ~8 MiB: safehold.cli.boot
# derives a key with it before the rest of the program is imported, and that memory would add to the
# KDF's 64 MiB (the peak of forget and prune). Its users import them where they need them.

#: Argon2id for new key files: t passes, m KiB of memory, p lanes (RFC 9106, second recommendation).
DEFAULT_KDF_PARAMS: dict[str, int] = {"t": 3, "m": 64 * 1024, "p": 4}
#: The cheapest Argon2id parameters a key file may have (:func:`use_kdf_params_for_new_keys`).
CHEAPEST_KDF_PARAMS: dict[str, int] = {"t": 1, "m": 1024, "p": 1}
#: Inclusive bounds of the parameters read from a key file.
ARGON2_LIMITS: dict[str, tuple[int, int]] = {"t": (1, 10), "m": (1024, 1024 * 1024), "p": (1, 16)}
SCRYPT_LIMITS: dict[str, tuple[int, int]] = {"n": (1 << 14, 1 << 20), "r": (1, 32), "p": (1, 16)}
SCRYPT_MAX_MEMORY = 1 << 30  # 128 * n * r bytes
SALT_LEN = (16, 64)
_KEY_AD = b"safehold/v1/keyfile"
#: The master secret's length (:data:`safehold.engine.format.crypto.MASTER_LEN`, not imported: see above;
#: tests/engine/test_kdf.py checks that they agree).
MASTER_LEN = 64
_WRAPPED_LEN = 12 + MASTER_LEN + 16  # nonce | master | tag

_new_key_params: dict[str, int] = dict(DEFAULT_KDF_PARAMS)


def use_kdf_params_for_new_keys(params: dict[str, int] | None) -> None:
    """Test suites and benchmarks only: the Argon2id parameters of every key file this process creates
    from now on (None: back to :data:`DEFAULT_KDF_PARAMS`). They must lie within :data:`ARGON2_LIMITS`."""
    global _new_key_params
    chosen = dict(params or DEFAULT_KDF_PARAMS)
    check_kdf_params("argon2id", chosen)
    _new_key_params = chosen


def new_key_params() -> dict[str, int]:
    """The Argon2id parameters of the next key file."""
    return dict(_new_key_params)


def check_kdf_params(kdf: str, params: dict[str, Any]) -> None:
    """Raise UnsupportedRepository unless ``params`` are integers within this version's bounds for
    ``kdf`` (an unknown KDF, a missing or extra parameter, a wrong type, a value out of range)."""
    limits = {"argon2id": ARGON2_LIMITS, "scrypt": SCRYPT_LIMITS}.get(kdf)
    if limits is None:
        raise UnsupportedRepository(f"key file uses an unknown KDF {kdf!r}")
    if set(params) != set(limits):
        raise UnsupportedRepository(
            f"key file's {kdf} parameters are {sorted(params)}, expected {sorted(limits)}"
        )
    for name, (low, high) in limits.items():
        value = params[name]
        if type(value) is not int:
            raise UnsupportedRepository(f"key file's {kdf} parameter {name} is not an integer")
        if not low <= value <= high:
            raise UnsupportedRepository(
                f"key file's {kdf} parameter {name}={value} is outside {low}..{high} "
                "(what this safehold accepts)"
            )
    if kdf == "argon2id" and params["m"] < 8 * params["p"]:
        raise UnsupportedRepository("key file's argon2id memory is below 8 KiB per lane")
    if kdf == "scrypt":
        n, r = params["n"], params["r"]
        if n & (n - 1) or 128 * n * r > SCRYPT_MAX_MEMORY:
            raise UnsupportedRepository(
                "key file's scrypt n must be a power of two and 128*n*r at most 1 GiB"
            )


def kdf_cost(kdf: str, params: dict[str, int]) -> int:
    """A rough cost of deriving a key (memory times passes), to try cheap key files first."""
    if kdf == "argon2id":
        return params["m"] * params["t"]
    return params["n"] * params["r"] // 8


#: Key-encryption keys derived ahead of need (:func:`derive_ahead`), keyed by everything a derivation
#: depends on; each is taken out when used.
_AHEAD: dict[tuple[str, str, tuple[tuple[str, int], ...], bytes], bytes] = {}


def _ahead_key(
    passphrase: str, kdf: str, params: dict[str, int], salt: bytes
) -> tuple[str, str, tuple[tuple[str, int], ...], bytes]:
    return passphrase, kdf, tuple(sorted(params.items())), salt


def derive_kek(passphrase: str, kdf: str, params: dict[str, int], salt: bytes) -> bytes:
    ahead = _AHEAD.pop(_ahead_key(passphrase, kdf, params, salt), None)
    return ahead if ahead is not None else _derive(passphrase, kdf, params, salt)


def derive_ahead(passphrase: str, key_files: list[tuple[str, bytes]]) -> int:
    """Derive the key-encryption keys of ``key_files`` ((name, bytes) as stored) for :func:`derive_kek`
    to find later, by the rules of an unlock: intact (named by their SHA-256), parameters within bounds,
    cheapest first, stopping at the first that ``passphrase`` opens. For a process that can derive its key
    before it imports the memory-heavy rest of the program (``safehold.cli.boot``): the KDF's 64 MiB then
    comes on top of a few MiB of imports instead of all of them. Returns how many were derived."""
    usable: list[tuple[int, str, KeyFile]] = []
    for name, raw in key_files:
        if _sha256_hex(raw) != name:
            continue
        try:
            kf = KeyFile.from_bytes(raw)
        except (IntegrityError, UnsupportedRepository):
            continue
        usable.append((kdf_cost(kf.kdf, kf.params), name, kf))
    derived = 0
    usable.sort(key=lambda x: (x[0], x[1]))
    for k, (_cost, _name, kf) in enumerate(usable):
        kek = _derive(passphrase, kf.kdf, kf.params, kf.salt)
        _AHEAD[_ahead_key(passphrase, kf.kdf, kf.params, kf.salt)] = kek
        derived += 1
        if k + 1 == len(usable):
            break  # the last one: whether it opens is the unlock's question (no cryptography import here)
        if kf.opens_with(kek):
            break
    return derived


def _sha256_hex(data: bytes) -> str:
    """SHA-256 without loading OpenSSL when the interpreter has its own (see the module's imports)."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # 3.12 and later
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def _derive(passphrase: str, kdf: str, params: dict[str, int], salt: bytes) -> bytes:
    pw = passphrase.encode("utf-8")
    if kdf == "argon2id":
        return hash_secret_raw(
            pw,
            salt,
            time_cost=params["t"],
            memory_cost=params["m"],
            parallelism=params["p"],
            hash_len=32,
            type=Type.ID,
        )
    if kdf == "scrypt":
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(pw)
    raise UnsupportedRepository(f"key file uses an unknown KDF {kdf!r}")


@dataclass
class KeyFile:
    kdf: str
    params: dict[str, int]
    salt: bytes
    created: str
    host: str
    user: str
    data: bytes

    def to_bytes(self) -> bytes:
        obj = {
            "version": 1,
            "kdf": self.kdf,
            "params": self.params,
            "salt": self.salt.hex(),
            "created": self.created,
            "host": self.host,
            "user": self.user,
            "data": self.data.hex(),
        }
        return json.dumps(obj, sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyFile:
        try:
            obj: dict[str, Any] = json.loads(raw)
            if obj.get("version") != 1:
                raise UnsupportedRepository("key file has an unknown version")
            kf = cls(
                kdf=str(obj["kdf"]),
                params=dict(obj["params"]),
                salt=bytes.fromhex(obj["salt"]),
                created=str(obj.get("created", "")),
                host=str(obj.get("host", "")),
                user=str(obj.get("user", "")),
                data=bytes.fromhex(obj["data"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"key file is malformed: {exc}") from None
        check_kdf_params(kf.kdf, kf.params)
        if not SALT_LEN[0] <= len(kf.salt) <= SALT_LEN[1]:
            raise UnsupportedRepository(
                f"key file's salt has {len(kf.salt)} bytes, not {SALT_LEN[0]}..{SALT_LEN[1]}"
            )
        if len(kf.data) != _WRAPPED_LEN:
            raise IntegrityError(f"key file's wrapped key has {len(kf.data)} bytes, not {_WRAPPED_LEN}")
        return kf

    def opens_with(self, kek: bytes) -> bool:
        """Whether the key-encryption key ``kek`` decrypts this key file."""
        return self._unwrap_with(kek) is not None

    def _unwrap_with(self, kek: bytes) -> bytes | None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(kek).decrypt(self.data[:12], self.data[12:], _KEY_AD)
        except InvalidTag:
            return None

    def derived_ahead(self, passphrase: str) -> bool:
        """Whether :func:`derive_ahead` already derived this key's key-encryption key for ``passphrase``
        (then :meth:`unwrap` is quick)."""
        return _ahead_key(passphrase, self.kdf, self.params, self.salt) in _AHEAD

    def unwrap(self, passphrase: str) -> bytes | None:
        """The master secret, or None when the passphrase does not open this key."""
        master = self._unwrap_with(derive_kek(passphrase, self.kdf, self.params, self.salt))
        if master is None:
            return None
        if len(master) != MASTER_LEN:
            raise IntegrityError("key file holds a master key of the wrong length")
        return master


def require_passphrase(passphrase: str) -> str:
    """``passphrase`` unless it is empty (UsageError): an empty passphrase neither creates nor opens a key.
    The CLI refuses it earlier with a message naming where it came from; this is the engine's own rule."""
    if not passphrase:
        raise UsageError(
            "an empty passphrase is not allowed", hint="Give the repository's passphrase (it is never empty)."
        )
    return passphrase


def wrap_master(master: bytes, passphrase: str, params: dict[str, int] | None = None) -> KeyFile:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    require_passphrase(passphrase)
    salt = os.urandom(32)
    p = dict(params) if params is not None else new_key_params()
    check_kdf_params("argon2id", p)
    kek = derive_kek(passphrase, "argon2id", p, salt)
    nonce = os.urandom(12)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return KeyFile(
        kdf="argon2id",
        params=p,
        salt=salt,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        host=socket.gethostname(),
        user=user,
        data=nonce + AESGCM(kek).encrypt(nonce, master, _KEY_AD),
    )
