"""validate_backend on good storages (every check ok, scratch removed) and on broken test doubles."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safehold.backends.base import FileInfo, FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.backends.memory import MemoryBackend
from safehold.backends.registry import open_backend
from safehold.backends.validate import Finding, validate_backend
from tests.backends.conftest import SSHServer, random_bucket

CHECKS = [
    "create",
    "read_after_write",
    "empty_file",
    "ranges",
    "missing_file",
    "atomic_visibility",
    "no_temp_files",
    "lock_overwrite",
    "list_lag",
    "remove",
    "cleanup",
]


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def assert_all_ok(findings: list[Finding]) -> None:
    assert [f.check for f in findings] == CHECKS
    bad = [f for f in findings if f.level != "ok"]
    assert not bad, bad


def test_memory_is_fully_conformant() -> None:
    assert_all_ok(validate_backend(MemoryBackend(), size=100_000))


def test_local_through_registry_and_scratch_removed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    b = open_backend(str(repo))
    b.create()
    findings = validate_backend(b, size=1_000_000)
    assert_all_ok(findings)
    assert by_check(findings)["list_lag"].seconds == 0.0
    assert sorted(os.listdir(repo)) == ["audit", "data", "index", "keys", "locks", "results", "snapshots"]


@pytest.mark.sftp
def test_sftp(sshd: SSHServer, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    b = open_backend(sshd.url(tmp_path / "r"), **sshd.options())
    try:
        assert_all_ok(validate_backend(b, size=500_000))
    finally:
        b.close()
    assert os.listdir(tmp_path / "r") == []


@pytest.mark.s3
def test_s3(s3_options: dict[str, Any]) -> None:
    b = open_backend(f"s3://{random_bucket()}/pre", **s3_options)
    b.create()
    try:
        assert_all_ok(validate_backend(b, size=500_000))
        inner: Any = b
        while hasattr(inner, "inner"):
            inner = inner.inner
        assert inner._client.list_objects_v2(Bucket=inner.bucket).get("KeyCount") == 0
    finally:
        b.close()


class NonAtomic(MemoryBackend):
    """Writes the first half, pauses, then the whole file: a storage without atomic writes."""

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        blob = bytes(data)
        if len(blob) > 1000:
            super().save(h, blob[: len(blob) // 2])
            time.sleep(0.05)
        super().save(h, blob)

    def scratch(self, name: str) -> NonAtomic:
        return NonAtomic()


class Laggy(MemoryBackend):
    """Listings show a file only ``lag`` seconds after it was saved, and keep removed files as long."""

    lag = 0.3

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[tuple[FileType, str], tuple[float, bool]] = {}
        self.mutex = threading.Lock()

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        super().save(h, data)
        with self.mutex:
            self.events[(h.type, h.name)] = (time.monotonic(), True)

    def remove(self, h: Handle) -> None:
        super().remove(h)
        with self.mutex:
            self.events[(h.type, h.name)] = (time.monotonic(), False)

    def list(self, t: FileType) -> Iterator[FileInfo]:
        now = time.monotonic()
        with self.mutex:
            events = dict(self.events)
        for (typ, name), (when, present) in events.items():
            if typ is t and present == (now - when >= self.lag):
                yield FileInfo(name, 0)

    def scratch(self, name: str) -> Laggy:
        return Laggy()


def test_non_atomic_storage_is_an_error() -> None:
    findings = by_check(validate_backend(NonAtomic(), size=200_000))
    assert findings["atomic_visibility"].level == "error"
    assert "partial file" in findings["atomic_visibility"].message
    assert findings["read_after_write"].level == "ok"


def test_list_lag_is_measured() -> None:
    findings = by_check(validate_backend(Laggy(), size=10_000, poll=0.02))
    lag = findings["list_lag"]
    assert lag.level == "warning"
    assert lag.seconds is not None and 0.25 <= lag.seconds < 2
    assert "new files appeared after" in lag.message


def test_list_lag_limit_is_an_error() -> None:
    class VeryLaggy(Laggy):
        lag = 100.0

        def scratch(self, name: str) -> VeryLaggy:
            return VeryLaggy()

    findings = by_check(validate_backend(VeryLaggy(), size=10_000, list_lag_limit=0.2, poll=0.05))
    assert findings["list_lag"].level == "error"
    assert "did not catch up with new files" in findings["list_lag"].message


def test_backend_without_scratch() -> None:
    class Plain:  # a Backend that cannot open a scratch location (validate never touches it then)
        pass

    findings = validate_backend(Plain())  # type: ignore[arg-type]
    assert [(f.check, f.level) for f in findings] == [("create", "error")]


def test_uncreatable_location(tmp_path: Path) -> None:
    findings = validate_backend(LocalBackend(tmp_path / "missing" / "repo"))
    assert [(f.check, f.level) for f in findings] == [("create", "error")]
    assert "cannot create" in findings[0].message
    assert not (tmp_path / "missing").exists()
