"""Fixtures for the integration tests: the real sshd and S3 server of the backend tests, reused.

The session fixtures live in :mod:`tests.backends.conftest`; importing them here makes them available
to this folder too (each conftest folder gets its own session instance).
"""

from __future__ import annotations

from tests.backends.conftest import aws_env, s3_options, s3_server, sshd

__all__ = ["aws_env", "s3_options", "s3_server", "sshd"]
