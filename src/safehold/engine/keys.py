"""Key files: the master secret wrapped by passphrase-derived keys.

A key file (``keys/<sha256>``) is JSON::

    {"version": 1, "kdf": "argon2id", "params": {"t": 3, "m": 65536, "p": 2}, "salt": "<hex>",
     "created": "...", "host": "...", "user": "...", "data": "<hex: nonce | AES-GCM(master) | tag>"}

Several key files may wrap the same master secret (several passphrases). A key file is immutable; a
passphrase change writes a new key file and removes the old one.
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
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from safehold.engine.crypto import MASTER_LEN
from safehold.errors import IntegrityError, UnsupportedRepository, UsageError

# Argon2id with 32 MiB and 4 passes: ~0.1 s here, and a small share of a backup's memory ceiling.
DEFAULT_KDF_PARAMS: dict[str, int] = {"t": 4, "m": 32 * 1024, "p": 2}
_KEY_AD = b"safehold/v1/keyfile"


def kdf_params_from_env() -> dict[str, int]:
    """Default Argon2id parameters; ``SAFEHOLD_KDF_FAST=1`` (tests only) picks cheap ones."""
    if os.environ.get("SAFEHOLD_KDF_FAST") == "1":
        return {"t": 1, "m": 1024, "p": 1}
    return dict(DEFAULT_KDF_PARAMS)


def derive_kek(passphrase: str, kdf: str, params: dict[str, int], salt: bytes) -> bytes:
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
            return cls(
                kdf=str(obj["kdf"]),
                params={k: int(v) for k, v in obj["params"].items()},
                salt=bytes.fromhex(obj["salt"]),
                created=str(obj.get("created", "")),
                host=str(obj.get("host", "")),
                user=str(obj.get("user", "")),
                data=bytes.fromhex(obj["data"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"key file is malformed: {exc}") from None

    def unwrap(self, passphrase: str) -> bytes | None:
        """The master secret, or None when the passphrase does not open this key."""
        kek = derive_kek(passphrase, self.kdf, self.params, self.salt)
        try:
            master = AESGCM(kek).decrypt(self.data[:12], self.data[12:], _KEY_AD)
        except InvalidTag:
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
    require_passphrase(passphrase)
    salt = os.urandom(32)
    p = params or kdf_params_from_env()
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
