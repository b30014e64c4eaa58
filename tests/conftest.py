"""Suite-wide settings: cheap key derivation and a private cache folder for every test session.

Key derivation: every key file the suite creates uses the cheapest parameters the reader accepts
(:func:`safehold.engine.format.keys.use_kdf_params_for_new_keys`), in this process and, through
``tests/helpers/cli.py``, in every safehold CLI process a test starts. Repositories are opened thousands of
times; at the production parameters (64 MiB, 3 passes) that alone would take many minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehold.engine.format import keys

#: Test modules that need no server, no CLI subprocess and no external tool: ``pytest -m unit`` runs
#: them (about a minute) while working on formats, wrappers, configuration or the architecture.
UNIT_MODULES = frozenset(
    {
        "tests/test_architecture.py",
        "tests/test_base.py",
        "tests/engine/test_format.py",
        "tests/engine/test_filescache.py",
        "tests/engine/test_lock.py",
        "tests/backends/test_wrappers.py",
        "tests/backends/test_memory_local.py",
        "tests/backends/test_registry.py",
        "tests/config/test_schema.py",
        "tests/config/test_docgen.py",
        "tests/sources/test_saas_diff.py",
        "tests/sources/test_saas_http.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        if Path(str(item.path)).relative_to(root).as_posix() in UNIT_MODULES:
            item.add_marker(pytest.mark.unit)


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
