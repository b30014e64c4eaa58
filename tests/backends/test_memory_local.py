"""The conformance suite on the in-memory and local backends, plus local-only behaviour."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from safehold.backends.base import Backend, FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.backends.memory import MemoryBackend
from safehold.errors import BackendError
from tests.backends.conformance import BackendConformance, data_handle


class TestMemoryConformance(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> Callable[[], Backend]:
        return MemoryBackend


class TestLocalConformance(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], Backend]:
        counter = iter(range(1000))
        return lambda: LocalBackend(tmp_path / f"repo{next(counter)}")


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    b = LocalBackend(tmp_path / "repo")
    b.create()
    return b


def test_layout_and_modes(local: LocalBackend) -> None:
    data = b"pack bytes"
    h = data_handle(data)
    local.save(h, data)
    local.save(Handle(FileType.CONFIG), b"c")
    path = local.root / "data" / h.name[:2] / h.name
    assert path.read_bytes() == data
    assert (local.root / "config").read_bytes() == b"c"
    for folder in ["", "keys", "data", "index", "snapshots", "locks", f"data/{h.name[:2]}"]:
        assert stat.S_IMODE((local.root / folder).stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((local.root / "config").stat().st_mode) == 0o600
    assert local.properties.local
    assert local.properties.location == str(local.root)


def test_list_skips_temp_and_foreign_files(local: LocalBackend) -> None:
    h = data_handle(b"x")
    local.save(h, b"x")
    folder = local.root / "data" / h.name[:2]
    (folder / f".tmp-{h.name}-0123").write_bytes(b"half")
    (local.root / "index" / ".tmp-abc-1").write_bytes(b"half")
    (local.root / "data" / "notes.txt").write_bytes(b"stray")
    assert [f.name for f in local.list(FileType.DATA)] == [h.name]
    assert list(local.list(FileType.INDEX)) == []


def test_save_leaves_no_temp_file(local: LocalBackend) -> None:
    for i in range(5):
        local.save(Handle(FileType.SNAPSHOT, f"{i:064x}"), b"s")
    assert sorted(os.listdir(local.root / "snapshots")) == [f"{i:064x}" for i in range(5)]


def test_save_without_root_refuses_to_create_it(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "not-mounted" / "repo")
    with pytest.raises(BackendError, match="does not exist"):
        b.save(data_handle(b"x"), b"x")
    assert not (tmp_path / "not-mounted").exists()


def _fail_write(monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    real_write = os.write
    calls = {"n": 0}

    def write(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(err, os.strerror(err))
        return real_write(fd, bytes(data)[:100])

    monkeypatch.setattr(os, "write", write)


def test_enospc_gives_clear_error_and_removes_temp(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = data_handle(b"y" * 1000)
    _fail_write(monkeypatch, errno.ENOSPC)
    with pytest.raises(BackendError) as e:
        local.save(h, b"y" * 1000)
    monkeypatch.undo()
    assert "no space left" in e.value.message
    assert f"Free space on {local.root / 'data'}" in e.value.hint
    assert os.listdir(local.root / "data" / h.name[:2]) == []
    assert list(local.list(FileType.DATA)) == []


def test_eacces_gives_clear_error(local: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_write(monkeypatch, errno.EACCES)
    with pytest.raises(BackendError) as e:
        local.save(Handle(FileType.INDEX, "aa"), b"z" * 1000)
    monkeypatch.undo()
    assert "permission denied" in e.value.message
    assert "read and write" in e.value.hint
    assert os.listdir(local.root / "index") == []


def test_failed_lock_rewrite_keeps_previous_version(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Handle(FileType.LOCK, "ab")
    local.save(h, b"old lock")
    _fail_write(monkeypatch, errno.EIO)
    with pytest.raises(BackendError):
        local.save(h, b"n" * 1000)
    monkeypatch.undo()
    assert local.load(h) == b"old lock"


def test_short_read_is_an_error(local: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(5000)
    h = data_handle(data)
    local.save(h, data)
    real_pread = os.pread
    calls = {"n": 0}

    def pread(fd: int, n: int, off: int) -> bytes:
        calls["n"] += 1
        return real_pread(fd, min(n, 1000), off) if calls["n"] == 1 else b""

    monkeypatch.setattr(os, "pread", pread)
    with pytest.raises(BackendError, match="short read"):
        local.load(h)


def test_partial_preads_are_joined(local: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(5000)
    h = data_handle(data)
    local.save(h, data)
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: real_pread(fd, min(n, 777), off))
    assert local.load(h, 10) == data[10:]


def test_unreadable_folder_is_permission_error(local: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    def listdir(path: object) -> list[str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(BackendError, match="permission denied") as e:
        list(local.list(FileType.INDEX))
    assert str(local.root / "index") in e.value.message
