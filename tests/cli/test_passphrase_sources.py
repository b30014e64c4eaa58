"""Where the repository passphrase comes from: one resolver for variable, file, command and configuration;
empty passphrases are refused everywhere; a broken --password-command is a configuration error (exit 2)
with a message and a hint, never a traceback."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from safehold import secrets, secretvalue
from safehold.backends.memory import MemoryBackend
from safehold.cli.app import App
from safehold.engine.format.repository import Repository
from safehold.errors import EXIT_USAGE, ConfigError, UsageError
from tests.helpers.fixtures import PASSWORD, SAFEHOLD


def no_traceback(r: Any) -> None:
    assert "Traceback" not in r.err and "unexpected" not in r.err and "hint: " in r.err, r.err


@pytest.mark.parametrize("source", ["env", "file", "newline-file", "command"])
def test_empty_passphrase_is_refused_at_init_and_open(
    tmp_path: Path, run: Any, repo_path: Path, source: str
) -> None:
    empty = tmp_path / "empty.pass"
    empty.write_text("\n" if source == "newline-file" else "")
    env = {
        "env": {"SAFEHOLD_PASSWORD": ""},
        "file": {"SAFEHOLD_PASSWORD_FILE": str(empty)},
        "newline-file": {"SAFEHOLD_PASSWORD_FILE": str(empty)},
        "command": {"SAFEHOLD_PASSWORD_COMMAND": "true"},
    }[source]
    where = {"env": "env:SAFEHOLD_PASSWORD", "command": "command:true"}.get(source, f"file:{empty}")
    r = run("init", password=None, env=env)
    assert r.code == EXIT_USAGE and f"the passphrase from {where} is empty" in r.err, r.err
    no_traceback(r)
    assert not repo_path.exists()
    # opening: the same message, not "wrong passphrase"
    assert run("init").code == 0
    r = run("snapshots", password=None, env=env)
    assert r.code == EXIT_USAGE and f"the passphrase from {where} is empty" in r.err, r.err
    assert "wrong passphrase" not in r.err


def test_empty_new_passphrase_is_refused_by_key_add_and_passwd(tmp_path: Path, run: Any) -> None:
    assert run("init").code == 0
    keys = run("key", "list", "--json").json()
    empty = tmp_path / "new.pass"
    for text in ("", "\n", "\r\n"):
        empty.write_text(text)
        for command in ("add", "passwd"):
            r = run("key", command, "--new-password-file", str(empty))
            assert r.code == EXIT_USAGE and f"the passphrase from file:{empty} is empty" in r.err, r.err
    assert run("key", "list", "--json").json() == keys


def test_empty_passphrase_at_the_prompt(run: Any, repo_path: Path) -> None:
    """On a terminal: empty answers at init's prompt are refused (the prompt's own path)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_PASSWORD")}
    env["SAFEHOLD_REPOSITORY"] = str(repo_path)
    proc = subprocess.Popen(
        [*SAFEHOLD, "init"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.2)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            output += data
            if data.rstrip().endswith(b":"):  # a prompt: answer it with an empty line (after getpass
                os.write(master, b"\n")  # set up the terminal, which discards input typed ahead)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == EXIT_USAGE, output
    assert b"an empty passphrase is not allowed" in output
    assert not repo_path.exists()


def test_engine_refuses_empty_passphrases() -> None:
    with pytest.raises(UsageError, match="empty passphrase"):
        Repository.init(MemoryBackend(), "")
    b = MemoryBackend()
    repo = Repository.init(b, PASSWORD)
    with pytest.raises(UsageError, match="empty passphrase"):
        Repository.open(b, "")
    with pytest.raises(UsageError, match="empty passphrase"):
        repo.add_key("")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("no-such-program-4711 --print", "secret command no-such-program-4711: program not found"),
        ("echo 'unterminated", "secret command echo cannot be split into arguments: No closing quotation"),
        ("sh -c 'exit 3'", "secret command sh exited with status 3"),
        ("sh -c 'kill -TERM $$'", "secret command sh was killed by signal 15"),
        ("", "secret command is empty"),
    ],
)
def test_password_command_failures_are_configuration_errors(run: Any, command: str, message: str) -> None:
    assert run("init").code == 0
    r = run("--password-command", command, "snapshots", password=None)
    if command:
        assert r.code == EXIT_USAGE and message in r.err, r.err
        no_traceback(r)
    else:  # an empty --password-command is no command: nothing else gives a passphrase either
        assert r.code == EXIT_USAGE and "no passphrase given" in r.err, r.err


def test_password_command_has_the_secret_command_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secretvalue, "SECRET_COMMAND_TIMEOUT", 0.3)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"secret command sleep did not finish within 0.3 s") as exc:
        App(password_command="sleep 30").get_password()
    assert time.monotonic() - started < 10 and "Run the command by hand" in exc.value.hint
    # the configuration's reference and --password-command go through the same resolver
    with pytest.raises(ConfigError, match="secret command sleep did not finish"):
        secrets.SecretRef(command="sleep 30").resolve()


def test_password_sources_still_work(tmp_path: Path, run: Any) -> None:
    assert run("init").code == 0
    f = tmp_path / "pw"
    f.write_text(PASSWORD + "\r\n")
    assert run("snapshots", password=None, env={"SAFEHOLD_PASSWORD_FILE": str(f)}).code == 0
    assert run("--password-command", f"cat {f}", "snapshots", password=None).code == 0
    assert run("--password-command", f"printf '%s' '{PASSWORD}'", "snapshots", password=None).code == 0
