"""Fixtures for engine, operations and CLI tests: a repository on local disk and a way to run the real CLI.

A conftest imports the fixtures it needs: ``from tests.helpers.fixtures import repo, repo_path, run``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.local import LocalBackend
from safehold.engine.format.repository import Repository
from tests.helpers.cli import SAFEHOLD as CLI

PASSWORD = "correct horse battery staple"
SAFEHOLD = CLI
#: Run as root without the capabilities that bypass file permissions, so that mode 000 really bites.
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def repo(repo_path: Path) -> Repository:
    return Repository.init(LocalBackend(str(repo_path)), PASSWORD)


@pytest.fixture
def run(repo_path: Path, cache_dir: Path) -> Callable[..., Result]:
    """Run the real ``safehold`` CLI in a subprocess against ``repo_path``."""

    def _run(
        *args: str,
        password: str | None = PASSWORD,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        no_dac_override: bool = False,
    ) -> Result:
        e = dict(os.environ)
        e["SAFEHOLD_REPOSITORY"] = str(repo_path)
        e["SAFEHOLD_CACHE_DIR"] = str(cache_dir)
        if password is None:
            e.pop("SAFEHOLD_PASSWORD", None)
        else:
            e["SAFEHOLD_PASSWORD"] = password
        e.update(env or {})
        prefix = NO_DAC_OVERRIDE if no_dac_override and os.geteuid() == 0 else []
        p = subprocess.run(
            [*prefix, *SAFEHOLD, *args],
            capture_output=True,
            text=True,
            env=e,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return _run
