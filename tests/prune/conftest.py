"""Fixtures for the retention, prune and repair tests: the engine tests' repository and CLI runner, and
the S3 server of the backend tests."""

from __future__ import annotations

from tests.backends.conftest import aws_env, s3_options, s3_server
from tests.helpers.fixtures import repo, repo_path, run

__all__ = ["aws_env", "repo", "repo_path", "run", "s3_options", "s3_server"]
