"""Suite-wide settings: cheap key derivation and a private cache folder for every test session.

Key derivation: every key file the suite creates uses the cheapest parameters the reader accepts
(:func:`safehold.engine.keys.use_kdf_params_for_new_keys`), in this process and, through
``tests/cli.py``, in every safehold CLI process a test starts. Repositories are opened thousands of
times; at the production parameters (64 MiB, 3 passes) that alone would take many minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehold.engine import keys


@pytest.fixture(autouse=True, scope="session")
def _safehold_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = {
        k: os.environ.get(k)
        for k in (
            "SAFEHOLD_CACHE_DIR",
            "SAFEHOLD_REPOSITORY",
            "SAFEHOLD_PASSWORD",
            "SAFEHOLD_PASSWORD_FILE",
            "SAFEHOLD_PASSWORD_COMMAND",
            "SAFEHOLD_BOOTSTRAP",
            "SAFEHOLD_AUDIT_LOG",
        )
    }
    for k in old:
        os.environ.pop(k, None)
    keys.use_kdf_params_for_new_keys(keys.CHEAPEST_KDF_PARAMS)
    # Hundreds of repositories: the bootstrap wheels (~55 MiB each) only where a test asks for them.
    os.environ["SAFEHOLD_BOOTSTRAP"] = "0"
    os.environ["SAFEHOLD_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    # The audit log of every CLI run of the suite goes here, never to /var/log/safehold.
    os.environ["SAFEHOLD_AUDIT_LOG"] = str(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield
    keys.use_kdf_params_for_new_keys(None)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("SAFEHOLD_CACHE_DIR", str(d))
    return d
