"""Fixtures for the adversarial tests: a repository, the real CLI, and a fingerprinted world around the
restore target (see :mod:`tests.security.sentinel`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fixtures import repo, repo_path, run  # noqa: F401 - fixtures
from tests.security.sentinel import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)
