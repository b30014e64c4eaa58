"""open_backend: URL schemes, options and the wrapper stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safehold.backends import registry
from safehold.backends.base import Backend, FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.backends.memory import MemoryBackend
from safehold.backends.wrappers import (
    DryRunBackend,
    LimitBackend,
    ReadOnlyBackend,
    RetryBackend,
    RetryPolicy,
    unwrap,
)
from safehold.errors import BackendError, ConfigError


@pytest.fixture(autouse=True)
def _clean_memory() -> Iterator[None]:
    yield
    registry.forget_memory_backends()


def layers(b: Backend) -> list[type]:
    out: list[type] = []
    while True:
        out.append(type(b))
        inner = getattr(b, "inner", None)
        if inner is None:
            return out
        b = inner


def test_plain_path_and_file_url_are_local(tmp_path: Path) -> None:
    for url in [str(tmp_path / "r1"), f"file://{tmp_path}/r2"]:
        b = registry.open_backend(url)
        inner = unwrap(b)
        assert isinstance(inner, LocalBackend)
        assert layers(b) == [RetryBackend, LimitBackend, LocalBackend]
        b.create()
        b.save(Handle(FileType.CONFIG), b"c")
        assert b.exists()
    assert (tmp_path / "r1" / "config").exists()
    assert (tmp_path / "r2" / "config").exists()


def test_file_url_with_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="names a host"):
        registry.open_backend("file://otherhost/srv/repo")


def test_memory_urls_share_backend_per_name() -> None:
    a = registry.open_backend("mem://one")
    a.save(Handle(FileType.CONFIG), b"c")
    assert registry.open_backend("mem://one").exists()
    assert not registry.open_backend("mem://two").exists()
    assert isinstance(unwrap(a), MemoryBackend)


def test_wrapper_options_compose_in_order() -> None:
    b = registry.open_backend("mem://x", read_only=True)
    assert layers(b) == [ReadOnlyBackend, RetryBackend, LimitBackend, MemoryBackend]
    b = registry.open_backend("mem://x", dry_run=True, retry=None)
    assert layers(b) == [DryRunBackend, LimitBackend, MemoryBackend]
    b = registry.open_backend("mem://x", retry=RetryPolicy(attempts=2))
    assert isinstance(b, RetryBackend)
    assert b.policy.attempts == 2
    with pytest.raises(ConfigError):
        registry.open_backend("mem://x", read_only=True, dry_run=True)


def test_read_only_through_registry_refuses_writes() -> None:
    b = registry.open_backend("mem://ro", read_only=True)
    with pytest.raises(BackendError, match="read-only"):
        b.save(Handle(FileType.LOCK, "aa"), b"x")
    assert not registry.open_backend("mem://ro").exists()


def test_unknown_scheme_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown repository URL scheme 'ftp'") as e:
        registry.open_backend("ftp://user:secret@host/x")
    assert "secret" not in e.value.message
    assert "s3://" in e.value.hint
    with pytest.raises(ConfigError, match="unknown option for local backends: bogus"):
        registry.open_backend("/tmp/x", bogus=1)


def test_duplicate_scheme_is_an_error() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_scheme("s3", lambda url, opts: MemoryBackend())
    assert registry.schemes() == ["file", "gs", "mem", "s3", "sftp"]


def test_connections_option_reaches_limit() -> None:
    b = registry.open_backend("mem://c", connections=3, retry=None)
    assert isinstance(b, LimitBackend)
    assert b.connections == 3


def test_redact_url() -> None:
    assert registry.redact_url("sftp://u:pw@h/x") == "sftp://u:***@h/x"
    assert registry.redact_url("sftp://u@h/x") == "sftp://u@h/x"
