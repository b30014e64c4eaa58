"""The wheels' own zip writer: what :mod:`zipfile` (and so pip) reads back from it, member by member, and a
real distribution's wheel whose RECORD matches its members. (pip installing the real wheels on a fresh
host: ``tests/e2e/test_bare_metal.py``.)"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from safehold.operations.backup import wheels, wheelzip
from safehold.operations.backup.wheelzip import WheelZip, ZipTooLarge

WHEN = (1980, 1, 1, 0, 0, 0)


def test_zipfile_reads_every_member_back_with_its_mode_and_method() -> None:
    members = [
        ("pkg/__init__.py", b"import os\n" * 500, stat.S_IFREG | 0o644),
        ("pkg/empty.py", b"", stat.S_IFREG | 0o644),
        ("pkg/random.bin", os.urandom(70_000), stat.S_IFREG | 0o644),  # deflate gains nothing: stored
        ("pkg/data/table.json.gz", b"already compressed" * 100, stat.S_IFREG | 0o644),  # stored by name
        ("pkg-1.0.data/scripts/tool", b"#!/bin/sh\necho hi\n", stat.S_IFREG | 0o755),
        ("pkg/naïve/日本.txt", "Grüße\n".encode(), stat.S_IFREG | 0o644),
    ]
    out = io.BytesIO()
    zf = WheelZip(out, (2024, 5, 17, 13, 45, 58))
    for name, data, mode in members:
        zf.add(name, data, mode)
    zf.close()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as z:
        assert z.testzip() is None
        infos = z.infolist()
        assert [i.filename for i in infos] == [m[0] for m in members]
        for info, (_name, data, mode) in zip(infos, members, strict=True):
            assert z.read(info) == data
            assert info.external_attr >> 16 == mode
            assert info.date_time == (2024, 5, 17, 13, 45, 58)
            assert info.create_system == 3
        # deflated only where it makes the member smaller (not the empty or tiny ones, nor random bytes)
        assert [i.compress_type for i in infos] == [zipfile.ZIP_DEFLATED, 0, 0, 0, 0, 0]
        assert infos[0].compress_size < infos[0].file_size // 10
        assert infos[5].flag_bits & 0x800  # a UTF-8 name says so
        assert not infos[0].flag_bits & 0x800


def test_an_empty_archive_and_the_fixed_time_of_the_wheels() -> None:
    out = io.BytesIO()
    WheelZip(out, WHEN).close()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as z:
        assert z.infolist() == []
    out = io.BytesIO()
    zf = WheelZip(out, WHEN)
    zf.add("a", b"x", stat.S_IFREG | 0o644)
    zf.close()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as z:
        assert z.infolist()[0].date_time == WHEN


def test_a_wheel_that_would_need_zip64_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheelzip, "_LIMIT", 1000)
    zf = WheelZip(io.BytesIO(), WHEN)
    zf.add("small", b"x" * 10, stat.S_IFREG | 0o644)
    with pytest.raises(ZipTooLarge):
        zf.add("big", os.urandom(2000), stat.S_IFREG | 0o644)


def test_a_real_distribution_wheel_lists_every_member_in_record(tmp_path: Path) -> None:
    dist = next(d for d in wheels.closure() if d.name == "msgpack")  # compiled, a few dozen files
    path = wheels.build_wheel(dist, tmp_path)
    assert path.name == dist.filename
    (tmp_path / "again").mkdir()
    again = wheels.build_wheel(dist, tmp_path / "again")
    assert again.read_bytes() == path.read_bytes()  # deterministic
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        names = z.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        assert names[-1] == record_name
        rows = [line.split(",") for line in z.read(record_name).decode().splitlines()]
        assert {r[0] for r in rows} == set(names)
        for name, digest, size in rows:
            if name == record_name:
                assert digest == size == ""
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data)
        assert {n for n, _ in wheels._files(dist)} == set(names) - {record_name}
        assert any(n.endswith(".so") for n in names)
