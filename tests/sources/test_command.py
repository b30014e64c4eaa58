"""The command source: stdout stored as a file, fail-closed, restore by piping into a program."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from safehold.errors import SourceError
from safehold.sources.base import SourceContext
from safehold.sources.command import CommandOptions, CommandSource
from safehold.sources.registry import source_class

from .memcomponent import MemoryComponent

PAYLOAD = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 8192)"  # 2 MiB, all byte values


def make(**kw: object) -> CommandSource:
    return CommandSource("cmd", CommandOptions.model_validate(kw))


def test_registry_kind() -> None:
    assert source_class("command") is CommandSource


def test_backup_streams_stdout_and_restore_pipes_it(tmp_path: Path) -> None:
    import sys

    src = make(
        command=[sys.executable, "-c", PAYLOAD],
        filename="data.bin",
        restore_command="cat > restored.bin",
        shell=True,
        cwd=str(tmp_path),
    )
    mem = MemoryComponent()
    meta = src.backup(mem, SourceContext())
    expected = bytes(range(256)) * 8192
    assert mem.files["data.bin"] == expected
    assert meta["size"] == len(expected)
    assert meta["sha256"] == hashlib.sha256(expected).hexdigest()
    assert meta["exit_code"] == 0

    plan = src.restore(mem, SourceContext(dry_run=True))
    assert plan.actions and not (tmp_path / "restored.bin").exists()

    src.restore(mem, SourceContext())
    assert (tmp_path / "restored.bin").read_bytes() == expected


def test_nonzero_exit_fails_with_stderr_in_log() -> None:
    src = make(command=["sh", "-c", "echo partial; echo 'disk on fire' >&2; exit 3"])
    mem = MemoryComponent()
    with pytest.raises(SourceError, match="status 3"):
        src.backup(mem, SourceContext())
    assert any("disk on fire" in line for line in mem.lines)


def test_timeout_kills_process_group_and_fails() -> None:
    # the child shell starts a grandchild sleep that holds stdout open: it must be killed too
    src = make(command=["sh", "-c", "echo start; sleep 30 & wait"], timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out"):
        src.backup(MemoryComponent(), SourceContext())
    assert time.monotonic() - started < 10


def test_missing_program_fails() -> None:
    src = make(command=["/nonexistent/dumper"])
    with pytest.raises(SourceError, match="cannot run"):
        src.backup(MemoryComponent(), SourceContext())


def test_empty_output_policy() -> None:
    make(command=["true"]).backup(MemoryComponent(), SourceContext())
    with pytest.raises(SourceError, match="no output"):
        make(command=["true"], allow_empty=False).backup(MemoryComponent(), SourceContext())


def test_secret_env_is_passed_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CMD_SECRET", "hunter2-xyz")
    src = make(
        command=["sh", "-c", 'printf %s "$TOKEN"; echo "bad token $TOKEN" >&2; exit 1'],
        env={"TOKEN": {"env": "TEST_CMD_SECRET"}},
    )
    mem = MemoryComponent()
    with pytest.raises(SourceError) as info:
        src.backup(mem, SourceContext())
    assert mem.files["output"] == b"hunter2-xyz"  # the program saw it
    assert "hunter2-xyz" not in str(info.value)
    assert mem.lines and all("hunter2-xyz" not in line for line in mem.lines)


def test_restore_command_failure_fails(tmp_path: Path) -> None:
    src = make(command=["echo", "hi"], restore_command=["sh", "-c", "cat >/dev/null; echo nope >&2; exit 4"])
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    logs: list[str] = []
    with pytest.raises(SourceError, match="status 4"):
        src.restore(mem, SourceContext(log=logs.append))
    assert any("nope" in line for line in logs)


def test_restore_without_command_needs_target(tmp_path: Path) -> None:
    src = make(command=["echo", "hello"], filename="sub/out.txt")
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    with pytest.raises(SourceError, match="no restore_command"):
        src.restore(mem, SourceContext())
    src.restore(mem, SourceContext(options={"target_root": str(tmp_path)}))
    assert (tmp_path / "sub" / "out.txt").read_bytes() == b"hello\n"
    assert oct((tmp_path / "sub" / "out.txt").stat().st_mode & 0o777) == oct(0o600)


def test_options_validation() -> None:
    with pytest.raises(ValidationError):
        CommandOptions.model_validate({"command": "echo hi"})  # string needs shell = true
    with pytest.raises(ValidationError):
        CommandOptions.model_validate({"command": []})
    with pytest.raises(ValidationError):
        CommandOptions.model_validate({"command": ["x"], "filename": "../escape"})
    with pytest.raises(ValidationError):
        CommandOptions.model_validate({"command": ["x"], "bogus": 1})
    for name, field in CommandOptions.model_fields.items():
        assert field.description and field.examples, name
    assert os.sep == "/"


def test_restore_program_that_stops_reading_fails() -> None:
    import sys

    src = make(command=[sys.executable, "-c", PAYLOAD], restore_command=["head", "-c", "1"])
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    with pytest.raises(SourceError, match="stopped reading"):
        src.restore(mem, SourceContext())


def test_restore_timeout_fails() -> None:
    src = make(command=["echo", "x"], restore_command=["sleep", "30"], timeout=0.5)
    mem = MemoryComponent()
    src.backup(mem, SourceContext())
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out"):
        src.restore(mem, SourceContext())
    assert time.monotonic() - started < 10
