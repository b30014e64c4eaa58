"""Tests of operations, in-process, on a repository on local disk (fixtures: :mod:`tests.helpers.fixtures`)."""

from tests.helpers.fixtures import repo, repo_path, run  # noqa: F401 - the CLI fixtures
