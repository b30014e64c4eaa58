"""Tests that drive the real ``safehold`` CLI in a subprocess (fixtures: :mod:`tests.helpers.fixtures`)."""

from tests.helpers.fixtures import repo, repo_path, run  # noqa: F401 - the CLI fixtures
