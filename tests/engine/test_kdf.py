"""Key-file KDF parameters: bounded when read (a planted key file cannot hang or crash an unlock), RFC 9106
defaults for new keys, and the cheap test parameters only through an explicit in-process call."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.memory import MemoryBackend
from safehold.engine.format import keys
from safehold.engine.format.repository import Repository
from safehold.engine.util import sha256_hex
from safehold.errors import IntegrityError, UnsupportedRepository

PW = "kdf test passphrase"


def plant(b: MemoryBackend, **changes: Any) -> str:
    """A copy of the repository's key file with ``changes`` applied, stored under its hash name."""
    (name,) = [fi.name for fi in b.list(FileType.KEY)][:1]
    doc = json.loads(b.load(Handle(FileType.KEY, name)))
    params = changes.pop("params", None)
    if params is not None:
        doc["params"] = params
    doc.update(changes)
    raw = json.dumps(doc).encode()
    planted = sha256_hex(raw)
    b.save(Handle(FileType.KEY, planted), raw)
    return planted


HOSTILE = [
    ({"params": {"t": 3, "m": 1 << 40, "p": 4}}, "parameter m=1099511627776 is outside 1024..1048576"),
    ({"params": {"t": 10**9, "m": 65536, "p": 4}}, "parameter t=1000000000 is outside 1..10"),
    ({"params": {"t": 0, "m": 65536, "p": 4}}, "parameter t=0 is outside"),
    ({"params": {"t": 3, "m": -1, "p": 4}}, "parameter m=-1 is outside"),
    ({"params": {"t": 3, "m": 65536, "p": 0}}, "parameter p=0 is outside"),
    ({"params": {"t": 3, "m": 65536, "p": 10**6}}, "parameter p=1000000 is outside"),
    ({"params": {"t": "3", "m": 65536, "p": 4}}, "parameter t is not an integer"),
    ({"params": {"t": 3.0, "m": 65536, "p": 4}}, "parameter t is not an integer"),
    ({"params": {"t": True, "m": 65536, "p": 4}}, "parameter t is not an integer"),
    ({"params": {"t": 3, "m": 1e999, "p": 4}}, "parameter m is not an integer"),
    ({"params": {"t": 3, "m": 65536}}, "parameters are ['m', 't'], expected ['m', 'p', 't']"),
    ({"params": {"t": 3, "m": 65536, "p": 4, "x": 1}}, "expected ['m', 'p', 't']"),
    ({"params": [3, 65536, 4]}, "malformed"),
    ({"params": {"t": 1, "m": 1024, "p": 200}}, "parameter p=200 is outside"),
    ({"kdf": "md5"}, "unknown KDF 'md5'"),
    ({"kdf": "scrypt", "params": {"n": 1 << 30, "r": 8, "p": 1}}, "parameter n=1073741824 is outside"),
    ({"kdf": "scrypt", "params": {"n": (1 << 15) + 1, "r": 8, "p": 1}}, "power of two"),
    ({"salt": "00" * 4}, "salt has 4 bytes"),
    ({"salt": "00" * 10_000}, "salt has 10000 bytes"),
    ({"data": "00" * 5}, "wrapped key has 5 bytes"),
]


@pytest.mark.parametrize(("changes", "message"), HOSTILE)
def test_out_of_range_key_file_is_refused_quickly_with_a_message(
    changes: dict[str, Any], message: str
) -> None:
    b = MemoryBackend()
    Repository.init(b, PW)
    (original,) = [fi.name for fi in b.list(FileType.KEY)]
    planted = plant(b, **changes)
    b.remove(Handle(FileType.KEY, original))  # the planted key is the only one
    started = time.monotonic()
    with pytest.raises(IntegrityError) as exc:
        Repository.open(b, PW)
    assert time.monotonic() - started < 2
    assert f"unusable key file(s): {planted[:16]}" in exc.value.message and message in exc.value.message
    with pytest.raises((IntegrityError, UnsupportedRepository), match="key file"):
        keys.KeyFile.from_bytes(b.load(Handle(FileType.KEY, planted)))


def test_planted_key_files_do_not_stop_the_right_one_and_expensive_ones_go_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = MemoryBackend()
    repo = Repository.init(b, PW)
    for changes, _ in HOSTILE[:4]:
        plant(b, **changes)
    costly = plant(b, params={"t": 10, "m": 1 << 20, "p": 16})  # in range, but 1 GiB x 10 passes
    derived: list[dict[str, int]] = []
    real = keys.derive_kek

    def spy(passphrase: str, kdf: str, params: dict[str, int], salt: bytes) -> bytes:
        derived.append(params)
        if params["m"] == 1 << 20:
            raise AssertionError("the expensive key was tried before the cheap one")
        return real(passphrase, kdf, params, salt)

    monkeypatch.setattr(keys, "derive_kek", spy)
    assert Repository.open(b, PW).key_name == repo.key_name
    assert derived == [keys.CHEAPEST_KDF_PARAMS]
    unusable: list[tuple[str, str]] = []
    assert {n for n, _ in repo.list_keys(unusable)} == {repo.key_name, costly}
    assert len(unusable) == 4


def test_cli_lists_and_removes_a_planted_key(run: Any, repo_path: Any) -> None:
    from safehold.backends.local import LocalBackend

    assert run("init").code == 0
    b = LocalBackend(str(repo_path))
    (name,) = [fi.name for fi in b.list(FileType.KEY)]
    doc = json.loads(b.load(Handle(FileType.KEY, name)))
    doc["params"]["m"] = 1 << 40
    raw = json.dumps(doc).encode()
    planted = sha256_hex(raw)
    b.save(Handle(FileType.KEY, planted), raw)
    listed = run("key", "list", "--json").json()
    assert {k["id"]: "unusable" in k for k in listed} == {name: False, planted: True}
    r = run("key", "list")
    assert f"{planted[:8]}  UNUSABLE: key file's argon2id parameter m=1099511627776" in r.out
    assert run("key", "remove", planted[:12]).code == 0
    b.remove(Handle(FileType.KEY, name))
    b.save(Handle(FileType.KEY, planted), raw)  # now it is the only key: a message, not a traceback
    r = run("snapshots")
    assert r.code == 1 and "unusable key file(s)" in r.err and "is outside 1024..1048576" in r.err
    assert "Traceback" not in r.err and "unexpected" not in r.err


def test_new_keys_use_rfc9106_parameters_and_no_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keys.DEFAULT_KDF_PARAMS == {"t": 3, "m": 64 * 1024, "p": 4}
    monkeypatch.setenv("SAFEHOLD_KDF_FAST", "1")  # the old switch: a cron job could inherit it
    keys.use_kdf_params_for_new_keys(None)
    try:
        b = MemoryBackend()
        repo = Repository.init(b, PW)
        (kf,) = [kf for _, kf in repo.list_keys()]
        assert kf.kdf == "argon2id" and kf.params == keys.DEFAULT_KDF_PARAMS
        assert Repository.open(b, PW).key_name == repo.key_name
    finally:
        keys.use_kdf_params_for_new_keys(keys.CHEAPEST_KDF_PARAMS)
    with pytest.raises(UnsupportedRepository):
        keys.use_kdf_params_for_new_keys({"t": 0, "m": 1024, "p": 1})


def test_the_key_files_master_length_is_the_master_keys() -> None:
    from safehold.engine.format import crypto

    assert keys.MASTER_LEN == crypto.MASTER_LEN
