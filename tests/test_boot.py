"""``safehold.cli.boot``: forget, prune, backup, restore, check and snapshots derive the repository key before importing the rest of the
program (peak memory), by the rules of an unlock, and the unlock that follows finds it instead of deriving
it again. Only a cache: a passphrase or repository it cannot be sure of is left to the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.cli import boot
from safehold.engine.format import keys
from safehold.engine.format.repository import Repository
from safehold.engine.util import sha256_hex
from safehold.errors import WrongPassword

PW = "boot test passphrase"


@pytest.fixture
def local_repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    Repository.init(LocalBackend(str(path)), PW)
    return path


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """Every real key derivation (its parameters), counted; the ahead-cache starts empty."""
    calls: list[dict[str, int]] = []
    real = keys._derive

    def counted(passphrase: str, kdf: str, params: dict[str, int], salt: bytes) -> bytes:
        calls.append(dict(params))
        return real(passphrase, kdf, params, salt)

    monkeypatch.setattr(keys, "_derive", counted)
    monkeypatch.setattr(keys, "_AHEAD", {})
    return calls


ENV = {"SAFEHOLD_PASSWORD": PW}


@pytest.mark.parametrize(
    ("argv", "env", "found"),
    [
        (["--repo", "R", "forget", "--keep-daily", "7", "--prune"], ENV, True),
        (["forget", "--keep-daily", "7", "--repo=R"], ENV, True),
        (["-q", "prune", "-r", "R"], ENV, True),
        # the option's value, not a command:
        (["--lock-wait", "prune", "--repo", "R", "ls"], ENV, False),
        (["prune"], {**ENV, "SAFEHOLD_REPOSITORY": "R"}, True),
        (["backup", "/x", "--repo", "R"], ENV, True),
        (["--repo", "R", "--json", "check", "--read-data"], ENV, True),
        (["--repo", "R", "snapshots"], ENV, True),
        (["--repo", "R", "ls", "latest"], ENV, False),  # not a command that gains
        (["--repo", "R", "prune", "--help"], ENV, False),
        (["--repo", "R", "prune", "--password-file", "f"], ENV, False),  # another passphrase source
        (["--repo", "R", "prune"], {**ENV, "SAFEHOLD_PASSWORD_COMMAND": "pass x"}, False),
        (["--config", "c.toml", "prune"], {**ENV, "SAFEHOLD_REPOSITORY": "R"}, False),
        (["--repo", "R", "prune"], {}, False),
        (["--repo", "sftp://host/R", "prune"], ENV, False),
    ],
)
def test_only_a_local_repository_command_that_gains_with_the_passphrase_in_the_environment(
    local_repo: Path, argv: list[str], env: dict[str, str], found: bool
) -> None:
    argv = [str(local_repo) if a == "R" else a.replace("=R", f"={local_repo}") for a in argv]
    env = {k: str(local_repo) if v == "R" else v for k, v in env.items()}
    assert boot.local_repository(argv, env) == (str(local_repo) if found else None)


def test_the_unlock_finds_the_key_derived_ahead(local_repo: Path, derivations: list[Any]) -> None:
    assert boot.derive_ahead(["--repo", str(local_repo), "prune"], ENV) == 1
    assert len(derivations) == 1
    Repository.open(LocalBackend(str(local_repo)), PW)
    assert len(derivations) == 1  # not derived again
    Repository.open(LocalBackend(str(local_repo)), PW)
    assert len(derivations) == 2  # each derived key is used once


def test_a_wrong_passphrase_is_not_derived_twice(local_repo: Path, derivations: list[Any]) -> None:
    assert boot.derive_ahead(["--repo", str(local_repo), "prune"], {"SAFEHOLD_PASSWORD": "wrong"}) == 1
    with pytest.raises(WrongPassword):
        Repository.open(LocalBackend(str(local_repo)), "wrong")
    assert len(derivations) == 1


def test_damaged_and_out_of_bounds_key_files_are_never_derived(
    local_repo: Path, derivations: list[Any]
) -> None:
    backend = LocalBackend(str(local_repo))
    (name,) = [fi.name for fi in backend.list(FileType.KEY)]
    doc = json.loads(backend.load(Handle(FileType.KEY, name)))
    huge = json.dumps({**doc, "params": {"t": 3, "m": 1 << 40, "p": 4}}).encode()
    backend.save(Handle(FileType.KEY, sha256_hex(huge)), huge)
    cheap = json.dumps({**doc, "params": {"t": 1, "m": 1024, "p": 1}}).encode()  # cheaper, and damaged:
    (local_repo / "keys" / ("0" * 64)).write_bytes(cheap)  # its name is not its hash
    assert boot.derive_ahead(["--repo", str(local_repo), "forget"], ENV) == 1
    assert derivations == [doc["params"]]
    Repository.open(backend, PW)
    assert derivations == [doc["params"]]


def test_the_program_unlocks_once(
    local_repo: Path, derivations: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_PASSWORD", PW)
    monkeypatch.setenv("SAFEHOLD_AUDIT_LOG", os.devnull)
    monkeypatch.setattr(
        "sys.argv", ["safehold", "--repo", str(local_repo), "forget", "--keep-daily", "7", "--prune"]
    )
    with pytest.raises(SystemExit) as done:
        boot.entry()
    assert done.value.code == 0
    assert len(derivations) == 1


def test_the_valued_option_table_agrees_with_the_global_options() -> None:
    from safehold.cli.globalopts import GLOBAL_OPTIONS

    assert {d for o in GLOBAL_OPTIONS if not o.flag for d in o.decls} == boot.VALUED


def test_the_key_is_derived_before_click_cryptography_and_openssl_are_imported(local_repo: Path) -> None:
    """What is imported when the KDF runs adds to its 64 MiB: the peak of forget and prune."""
    code = (
        "import sys; from safehold.cli import boot\n"
        "n = boot.derive_ahead(['--repo', sys.argv[1], 'prune'], {'SAFEHOLD_PASSWORD': sys.argv[2]})\n"
        "heavy = ('click', 'cryptography', '_hashlib', 'numpy', 'pydantic')\n"
        "print(n, sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(local_repo), PW], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "1 []"


def test_forget_and_prune_without_a_configuration_import_no_pydantic(
    local_repo: Path, tmp_path: Path
) -> None:
    """Their peak after the KDF is their imports plus the index: pydantic (~8 MiB) has no part in it."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('pydantic' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['safehold', '--repo', sys.argv[1], 'forget', '--keep-daily', '7', '--prune',"
        " '--lock-wait', '1m']\n"
        "from safehold.cli import boot\n"
        "boot.entry()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(SAFEHOLD_PASSWORD=PW, SAFEHOLD_AUDIT_LOG=os.devnull, SAFEHOLD_CONFIG="", HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code, str(local_repo)], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr
