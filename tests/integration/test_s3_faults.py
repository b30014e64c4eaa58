"""S3 answering 503 SlowDown, 500 InternalError and resetting connections, against moto on loopback.

The faults are injected in botocore's ``before-send`` event of the backend's own client: the request is
answered with a real S3 error document (parsed by botocore like a server's) or fails with the
connection error botocore raises on a reset. Every third request fails: backup, check and restore still
complete through the retry wrapper, and the result is byte-identical. When S3 keeps answering SlowDown,
the backup fails with a clear message and leaves the repository consistent.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.awsrequest
import botocore.exceptions
import pytest

from safehold.backends.base import Backend
from safehold.backends.registry import compose
from safehold.backends.s3 import from_url
from safehold.backends.wrappers import unwrap
from safehold.engine.check.checker import Checker
from safehold.engine.format.repository import Repository
from safehold.errors import BackendError
from tests.backends.conftest import random_bucket
from tests.helpers.treecompare import compare_trees
from tests.integration._sweep import (
    FAST_RETRY,
    PASSWORD,
    backup,
    clear_message,
    make_source,
    restore_to,
    restored_root,
)

pytestmark = pytest.mark.s3

_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kw: Any) -> Iterator[bytes]:
        yield self.body


class Injector:
    """Fails every ``every``-th request (0: every request) with the kinds in turn; counts what it did."""

    def __init__(self, kinds: list[str], every: int) -> None:
        self.kinds = itertools.cycle(kinds)
        self.every = every
        self.calls = itertools.count(1)
        self.injected: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Any, **_kw: Any) -> botocore.awsrequest.AWSResponse | None:
        with self._lock:
            n = next(self.calls)
            if self.every and n % self.every:
                return None
            kind = next(self.kinds)
            self.injected[kind] = self.injected.get(kind, 0) + 1
        if kind == "reset":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        status, code, message = _ERRORS[kind]
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>T</RequestId></Error>"
        ).encode()
        return botocore.awsrequest.AWSResponse(
            request.url, status, {"Content-Type": "application/xml"}, _Raw(body)
        )


def _backend(url: str, opts: dict[str, Any], injector: Injector | None) -> Backend:
    s3 = from_url(url, dict(opts))
    if injector is not None:
        s3._client.meta.events.register("before-send.s3", injector)
    # Injection is every n-th request across threads: concurrent uploads can line one save's attempts
    # up with the injected calls several times in a row, so allow more attempts than the sweep does.
    return compose(s3, retry=dataclasses.replace(FAST_RETRY, attempts=10))


def test_slowdown_errors_and_resets_are_survived(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    src = make_source(tmp_path / "src")
    url = f"s3://{random_bucket()}/repo"
    Repository.init(_backend(url, s3_options, None), PASSWORD)
    inj = Injector(["slowdown", "internal", "reset"], every=3)
    snap = backup(_backend(url, s3_options, inj), src)
    assert set(inj.injected) == {"slowdown", "internal", "reset"} and sum(inj.injected.values()) >= 6
    check = Checker(Repository.open(_backend(url, s3_options, inj), PASSWORD)).run(read_data=True)
    assert check.ok and check.packs_read >= 2, check.errors
    target = tmp_path / "restored"
    before = sum(inj.injected.values())
    errors, exc = restore_to(_backend(url, s3_options, inj), snap, target)
    assert exc is None and errors == []
    assert sum(inj.injected.values()) > before
    assert compare_trees(src, restored_root(target, src), check_owner=False) == []
    unwrap(_backend(url, s3_options, None)).close()


def test_endless_slowdown_fails_clearly_and_leaves_the_repository_consistent(
    tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    src = make_source(tmp_path / "src")
    url = f"s3://{random_bucket()}/repo"
    Repository.init(_backend(url, s3_options, None), PASSWORD)
    first = backup(_backend(url, s3_options, None), src)
    (src / "dir0" / "new.bin").write_bytes(b"n" * 100_000)
    # let the repository open, then throttle everything
    be = _backend(url, s3_options, None)
    repo = Repository.open(be, PASSWORD)
    unwrap(be)._client.meta.events.register("before-send.s3", Injector(["slowdown"], every=0))  # type: ignore[attr-defined]
    from safehold.operations.backup.paths import BackupOptions, backup_paths

    with pytest.raises(BackendError) as info:
        backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False))
    assert clear_message(info.value) is None
    assert "SlowDown" in info.value.message and "attempts" in info.value.message
    clean = Repository.open(_backend(url, s3_options, None), PASSWORD)
    result = Checker(clean).run(read_data=True)
    assert result.ok, result.errors
    assert [s.id for s in clean.snapshots()] == [first]
