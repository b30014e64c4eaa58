"""The base every layer uses: atomic writes (:mod:`safehold.fsutil`) and running programs
(:mod:`safehold.proc`)."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from safehold import proc
from safehold.errors import SourceError
from safehold.fsutil import AtomicFile, atomic_write


def test_atomic_write_replaces_whole_with_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file"
    assert atomic_write(dest, [b"a" * 10, b"b"], mode=0o640, parents=True) == 11
    assert dest.read_bytes() == b"a" * 10 + b"b" and stat.S_IMODE(dest.stat().st_mode) == 0o640
    atomic_write(dest, b"new")
    assert dest.read_bytes() == b"new" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert os.listdir(dest.parent) == ["file"]


def test_atomic_file_failure_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "file"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicFile(dest) as f:
        f.write(b"half")
        raise RuntimeError("disk on fire")
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["file"]
    with AtomicFile(dest) as f:  # not committed: nothing changes either
        f.write(b"never")
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["file"]


def test_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dest = tmp_path / "file"
    dest.symlink_to(victim)
    atomic_write(dest, b"data")
    assert victim.read_bytes() == b"precious"
    assert not dest.is_symlink() and dest.read_bytes() == b"data"


def test_redact_masks_the_longer_secret_whole() -> None:
    assert proc.redact("pw=abcdef and abc", ["abc", None, "", "abcdef"]) == "pw=*** and ***"


def test_run_capture_reports_missing_programs_and_timeouts_without_raising() -> None:
    missing = proc.run_capture(["/nonexistent/tool"])
    assert missing.returncode is None and not missing.ok and "cannot run" in missing.stderr
    started = time.monotonic()
    slow = proc.run_capture(["sh", "-c", "sleep 30 & wait"], timeout=0.5)
    assert slow.timed_out and not slow.ok and time.monotonic() - started < 10
    ok = proc.run_capture([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert ok.ok and ok.stdout == b"out\n" and ok.stderr == "err"


def test_drain_fails_closed_and_masks_secrets_in_message_and_log() -> None:
    lines: list[str] = []
    with pytest.raises(SourceError, match="exited with status 3") as exc:
        proc.drain(
            ["sh", "-c", "echo data; echo 'password s3cret rejected' >&2; exit 3"],
            lambda stream: stream.read(),
            secrets=["s3cret"],
            log=lines.append,
        )
    assert "s3cret" not in exc.value.message and "***" in exc.value.message
    assert lines == ["sh: password *** rejected"]
    with pytest.raises(SourceError, match="empty dump"):
        proc.drain(["true"], lambda stream: stream.read())
    data, res = proc.drain(["printf", "x-- end"], lambda stream: stream.read(), end_marker=b"-- end")
    assert data == b"x-- end" and res.size == 7


_WRITER = (
    "import os, sys\n"
    "for i in range(2000): os.write(1, (b'%06d' % i) * 700)\n"  # 8.4 MB in 4,200-byte writes
    "os.write(1, b'-- end')\n"
    "sys.exit(int(sys.argv[1]))"
)


def test_drain_with_read_ahead_streams_everything_and_fails_closed() -> None:
    expected = b"".join((b"%06d" % i) * 700 for i in range(2000)) + b"-- end"
    seen: list[bytes] = []

    def consume(stream: Any) -> bytes:
        got, buf = [], bytearray(300_000)
        while n := stream.readinto(memoryview(buf)[: 1 + len(got) % 300_000]):
            got.append(bytes(buf[:n]))
        return b"".join(got)

    data, res = proc.drain(
        [sys.executable, "-c", _WRITER, "0"], consume, end_marker=b"-- end", observer=seen.append,
        read_ahead=1 << 20,
    )  # fmt: skip
    assert data == expected and res.size == len(expected) and b"".join(seen) == expected
    # the program failing after its output is still a failure (however much was read ahead)
    with pytest.raises(SourceError, match="exited with status 3"):
        proc.drain([sys.executable, "-c", _WRITER, "3"], consume, read_ahead=1 << 20)
    # a consumer that fails stops the program; one that stops early gets no end marker
    started = time.monotonic()
    with pytest.raises(ValueError, match="consumer"):
        proc.drain(
            [sys.executable, "-c", "import os\nwhile True: os.write(1, b'x' * 65536)"],
            lambda stream: stream.read(10) and (_ for _ in ()).throw(ValueError("consumer")),
            read_ahead=1 << 20,
        )
    with pytest.raises(SourceError, match="truncated"):
        proc.drain(
            [sys.executable, "-c", _WRITER, "0"], lambda s: s.read(100), end_marker=b"-- end",
            read_ahead=1 << 16,
        )  # fmt: skip
    assert time.monotonic() - started < 30


def test_feed_fails_when_the_program_stops_reading() -> None:
    with pytest.raises(SourceError, match="stopped reading"):
        proc.feed(["head", "-c", "1"], (b"x" * 65536 for _ in range(64)))
    res = proc.feed(["cat"], [b"abc"], stdout="tail")
    assert res.size == 3 and res.stderr == "abc"


def test_find_tool_names_the_package() -> None:
    with pytest.raises(SourceError, match="no-such-tool / other not found") as exc:
        proc.find_tool(["no-such-tool", "other"], package="some-package")
    assert "apt-get install some-package" in exc.value.hint
    assert proc.find_tool(["no-such-tool", "sh"]).endswith("/sh")
