"""The one conformance suite every backend passes.

A backend's test is a subclass that provides a ``make_backend`` fixture: a callable returning a new
backend on an empty, not yet created location::

    class TestMemory(BackendConformance):
        @pytest.fixture
        def make_backend(self):
            return MemoryBackend

Each test checks one guarantee of :mod:`safehold.backends.base`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

import pytest

from safehold.backends.base import Backend, FileType, Handle
from safehold.errors import BackendError, NotFoundError

MakeBackend = Callable[[], Backend]


def hexname(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_handle(data: bytes) -> Handle:
    return Handle(FileType.DATA, hexname(data))


class BackendConformance:
    """Subclasses provide the ``make_backend`` fixture."""

    @pytest.fixture
    def be(self, make_backend: MakeBackend) -> Backend:
        b = make_backend()
        b.create()
        return b

    # -- create / exists ------------------------------------------------------------------------------

    def test_create_is_idempotent_and_exists_follows_config(self, make_backend: MakeBackend) -> None:
        b = make_backend()
        b.create()
        b.create()
        assert not b.exists()
        b.save(Handle(FileType.CONFIG), b"cfg")
        assert b.exists()
        b.create()
        assert b.exists()
        assert b.load(Handle(FileType.CONFIG)) == b"cfg"

    def test_properties(self, be: Backend) -> None:
        p = be.properties
        assert p.location
        assert p.connections >= 1

    # -- save / load ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("t", [t for t in FileType if t is not FileType.CONFIG])
    def test_round_trip_every_type(self, be: Backend, t: FileType) -> None:
        data = os.urandom(1000) + t.value.encode()
        h = Handle(t, hexname(data))
        be.save(h, data)
        assert be.load(h) == data
        assert be.stat(h).size == len(data)
        assert be.stat(h).name == h.name

    def test_save_accepts_memoryview(self, be: Backend) -> None:
        data = os.urandom(300)
        h = data_handle(data)
        be.save(h, memoryview(bytearray(data)))
        assert be.load(h) == data

    def test_resaving_same_bytes_is_harmless(self, be: Backend) -> None:
        data = os.urandom(100)
        h = data_handle(data)
        be.save(h, data)
        be.save(h, data)
        assert be.load(h) == data
        assert [f.name for f in be.list(FileType.DATA)] == [h.name]

    def test_empty_file(self, be: Backend) -> None:
        h = Handle(FileType.INDEX, hexname(b""))
        be.save(h, b"")
        assert be.load(h) == b""
        assert be.stat(h).size == 0
        assert [(f.name, f.size) for f in be.list(FileType.INDEX)] == [(h.name, 0)]
        assert be.load(h, 0, 0) == b""
        with pytest.raises(BackendError) as e:
            be.load(h, 0, 1)
        assert not isinstance(e.value, NotFoundError)

    def test_large_file(self, be: Backend) -> None:
        data = os.urandom(20 * 1024 * 1024)
        h = data_handle(data)
        be.save(h, data)
        assert be.stat(h).size == len(data)
        got = be.load(h)
        assert len(got) == len(data)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        assert be.load(h, len(data) - 4096) == data[-4096:]
        assert be.load(h, 7 * 1024 * 1024 + 3, 1024 * 1024) == data[7 * 1024 * 1024 + 3 : 8 * 1024 * 1024 + 3]

    # -- ranges ---------------------------------------------------------------------------------------

    def test_byte_ranges(self, be: Backend) -> None:
        data = os.urandom(10_000)
        h = data_handle(data)
        be.save(h, data)
        assert be.load(h, 0, 10) == data[:10]
        assert be.load(h, 4321, 1000) == data[4321:5321]
        assert be.load(h, 9990) == data[9990:]
        assert be.load(h, 9990, 10) == data[9990:]
        assert be.load(h, 0, 10_000) == data
        assert be.load(h, 10_000) == b""
        assert be.load(h, 500, 0) == b""

    @pytest.mark.parametrize(("offset", "length"), [(9_995, 10), (10_000, 1), (10_001, None), (0, 10_001)])
    def test_range_past_end_is_an_error(self, be: Backend, offset: int, length: int | None) -> None:
        data = os.urandom(10_000)
        h = data_handle(data)
        be.save(h, data)
        with pytest.raises(BackendError) as e:
            be.load(h, offset, length)
        assert not isinstance(e.value, NotFoundError)

    # -- missing files --------------------------------------------------------------------------------

    @pytest.mark.parametrize("t", list(FileType))
    def test_missing_file_is_not_found(self, be: Backend, t: FileType) -> None:
        h = Handle(t, "ab" + "0" * 62)
        with pytest.raises(NotFoundError):
            be.load(h)
        with pytest.raises(NotFoundError):
            be.load(h, 0, 1)
        with pytest.raises(NotFoundError):
            be.stat(h)

    def test_bad_names_are_refused(self, be: Backend) -> None:
        for name in ["../config", "a/b", ".tmp-x", "", "x" * 200]:
            with pytest.raises(ValueError):
                be.save(Handle(FileType.KEY, name), b"x")

    def test_bootstrap_files_keep_their_file_names(self, be: Backend) -> None:
        names = [
            "safehold-1.0-py3-none-any.whl",
            "numpy-2.0+local_x-cp311-cp311-linux_x86_64.whl",
            "SHA256SUMS",
        ]
        for name in names:
            be.save(Handle(FileType.BOOTSTRAP, name), name.encode())
        assert sorted(f.name for f in be.list(FileType.BOOTSTRAP)) == sorted(names)
        assert be.load(Handle(FileType.BOOTSTRAP, names[1])) == names[1].encode()
        assert list(be.list(FileType.KEY)) == []
        for bad in ["..", "../x.whl", "a/b.whl", ".hidden", "a..b", "", "-x"]:
            with pytest.raises(ValueError):
                be.save(Handle(FileType.BOOTSTRAP, bad), b"x")
        with pytest.raises(ValueError):  # the relaxed names are for bootstrap/ only
            be.save(Handle(FileType.INDEX, "a.b"), b"x")

    # -- list -----------------------------------------------------------------------------------------

    def test_list_per_type_with_data_fan_out(self, be: Backend) -> None:
        saved: dict[FileType, dict[str, int]] = {t: {} for t in FileType if t is not FileType.CONFIG}
        for t, names in saved.items():
            for i in range(3):
                data = os.urandom(10 + i) + t.value.encode()
                h = Handle(t, hexname(data))
                be.save(h, data)
                names[h.name] = len(data)
        # data packs in several fan-out folders, including names sharing a prefix
        for prefix in ["00", "00", "ff", "7a"]:
            name = prefix + os.urandom(31).hex()
            be.save(Handle(FileType.DATA, name), b"d" * 5)
            saved[FileType.DATA][name] = 5
        for t, want in saved.items():
            got = {f.name: f.size for f in be.list(t)}
            assert got == want, t
        assert [f.name for f in be.list(FileType.CONFIG)] == []
        be.save(Handle(FileType.CONFIG), b"c" * 7)
        assert [(f.name, f.size) for f in be.list(FileType.CONFIG)] == [("config", 7)]

    def test_list_says_when_each_file_was_written(self, be: Backend) -> None:
        """``FileInfo.mtime`` is the storage's own write time (snapshots show it beside their claimed time)."""
        started = time.time()
        names = []
        for _ in range(2):
            data = os.urandom(20)
            be.save(Handle(FileType.SNAPSHOT, hexname(data)), data)
            names.append(hexname(data))
        ended = time.time()
        listed = {f.name: f.mtime for f in be.list(FileType.SNAPSHOT)}
        assert set(listed) == set(names)
        for name in names:
            mtime = listed[name]
            assert mtime is not None and started - 2 <= mtime <= ended + 2, (mtime, started, ended)

    def test_list_of_empty_repository(self, be: Backend) -> None:
        for t in FileType:
            assert list(be.list(t)) == []

    # -- remove ---------------------------------------------------------------------------------------

    def test_remove_and_remove_missing(self, be: Backend) -> None:
        data = os.urandom(50)
        h = data_handle(data)
        be.save(h, data)
        be.remove(h)
        with pytest.raises(NotFoundError):
            be.load(h)
        assert list(be.list(FileType.DATA)) == []
        be.remove(h)
        be.remove(Handle(FileType.SNAPSHOT, "deadbeef"))
        be.save(Handle(FileType.CONFIG), b"c")
        be.remove(Handle(FileType.CONFIG))
        assert not be.exists()

    # -- locks ----------------------------------------------------------------------------------------

    def test_lock_overwrite(self, be: Backend) -> None:
        h = Handle(FileType.LOCK, "a1b2c3")
        be.save(h, b"first version of the lock")
        be.save(h, b"second")
        assert be.load(h) == b"second"
        assert be.stat(h).size == 6
        assert [(f.name, f.size) for f in be.list(FileType.LOCK)] == [("a1b2c3", 6)]

    # -- concurrency ----------------------------------------------------------------------------------

    def test_concurrent_saves_and_loads(self, be: Backend) -> None:
        errors: list[BaseException] = []
        saved: dict[str, bytes] = {}
        mutex = threading.Lock()

        def work(seed: int) -> None:
            try:
                for i in range(5):
                    data = os.urandom(2000 + seed * 10 + i)
                    h = data_handle(data)
                    be.save(h, data)
                    be.save(Handle(FileType.LOCK, f"cafe{seed}"), data[:10])
                    assert be.load(h) == data
                    with mutex:
                        saved[h.name] = data
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert {f.name: f.size for f in be.list(FileType.DATA)} == {n: len(d) for n, d in saved.items()}
        for name, data in saved.items():
            assert be.load(Handle(FileType.DATA, name)) == data
        assert {f.name for f in be.list(FileType.LOCK)} == {f"cafe{n}" for n in range(6)}
        assert all(len(be.load(Handle(FileType.LOCK, f"cafe{n}"))) == 10 for n in range(6))
