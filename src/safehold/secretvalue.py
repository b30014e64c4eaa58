"""Reading a secret from its reference, without pydantic: the environment variable, the file (or one key
of a dotenv file) or the command's output that :class:`safehold.secrets.SecretRef` names.

:class:`~safehold.secrets.SecretRef` (a pydantic model: it validates references in the configuration)
reads through these functions, and so does the passphrase of every command (``SAFEHOLD_PASSWORD``,
``--password-file``, ``--password-command``), through a plain :class:`Reference`: a command that reads
no configuration file then imports no pydantic (~0.1 s of every start).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from safehold.errors import ConfigError

#: Seconds a secret command (also --password-command) may run before it is killed.
SECRET_COMMAND_TIMEOUT = 60
_DOTENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class SecretSource(Protocol):
    """What gives a secret: a :class:`Reference` or a :class:`~safehold.secrets.SecretRef`."""

    def describe(self) -> str: ...

    def resolve(self) -> str: ...


class _Fields(Protocol):
    @property
    def env(self) -> str | None: ...
    @property
    def file(self) -> str | None: ...
    @property
    def key(self) -> str | None: ...
    @property
    def command(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference made by the program itself (exactly one of ``env``, ``file``, ``command``; ``key``
    only with ``file``), read like a :class:`~safehold.secrets.SecretRef`."""

    env: str | None = None
    file: str | None = None
    key: str | None = None
    command: str | None = None

    def describe(self) -> str:
        return describe(self)

    def resolve(self) -> str:
        return resolve(self)


def describe(ref: _Fields) -> str:
    """Where the secret of ``ref`` comes from, safe to show (never the value)."""
    if ref.env:
        return f"env:{ref.env}"
    if ref.file:
        return f"file:{ref.file}" + (f":{ref.key}" if ref.key else "")
    return f"command:{program(ref.command or '')}"


def resolve(ref: _Fields) -> str:
    """The secret value of ``ref``; raises ConfigError (without the value) when it cannot be read."""
    if ref.env:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(
                f"environment variable {ref.env} is not set",
                hint=f"Export {ref.env} before running safehold, or point the setting elsewhere.",
            )
        return value
    if ref.file:
        return read_file_secret(Path(ref.file), ref.key)
    return run_secret_command(ref.command or "")


def parse_reference_string(text: str) -> dict[str, str] | None:
    """The table form of a prefix-tagged reference string, or None when ``text`` is not one.

    ``"env:NAME"`` -> ``{"env": "NAME"}``; ``"file:/p"`` -> ``{"file": "/p"}``; ``"file:/p:KEY"`` ->
    ``{"file": "/p", "key": "KEY"}`` (the part after the last ':' is a key when it looks like a dotenv
    key); ``"command:..."`` -> ``{"command": "..."}``.
    """
    tag, sep, rest = text.partition(":")
    tag = tag.strip().lower()
    if not sep or tag not in ("env", "file", "command") or not rest.strip():
        return None
    rest = rest.strip()
    if tag == "file":
        path, colon, key = rest.rpartition(":")
        if colon and path and _DOTENV_KEY.match(key) and "/" not in key:
            return {"file": path, "key": key}
        return {"file": rest}
    return {tag: rest}


def read_file_secret(path: Path, key: str | None) -> str:
    try:
        text = path.read_bytes().decode("utf-8")  # bytes as they are: no newline translation of a CR
    except OSError as exc:
        raise ConfigError(
            f"cannot read secret file {path}: {exc.strerror}", hint="Check the path and its permissions."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"secret file {path} is not UTF-8 text", hint="Secrets are read as UTF-8 text."
        ) from None
    if key is None:
        return text.rstrip("\r\n")
    value = parse_dotenv(text).get(key)
    if value is None:
        raise ConfigError(f"key {key} not found in {path}", hint="Check the key name in the dotenv file.")
    return value


def program(command: str) -> str:
    """The program a command runs, for messages (the arguments may hold secrets; never shown)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else ""


def run_secret_command(command: str) -> str:
    """The standard output of ``command`` (split like a shell, run without one), trailing newline removed;
    ConfigError with a hint when it cannot be split, is not found, fails or outlasts the timeout."""
    shown = f"secret command {program(command) or repr(command)}"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"{shown} cannot be split into arguments: {exc}",
            hint="Quote it as a shell would; it runs without a shell (no pipes, no variables).",
        ) from None
    if not argv:
        raise ConfigError("secret command is empty", hint="Give the program that prints the secret.")
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=SECRET_COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: program not found",
            hint="It runs without a shell: give the program's full path or put it on PATH.",
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{shown} did not finish within {SECRET_COMMAND_TIMEOUT} s and was killed",
            hint="Run the command by hand; it must print the secret without waiting for input.",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{shown} could not run: {getattr(exc, 'strerror', None) or exc}",
            hint="Check the command and the program's permissions.",
        ) from None
    if proc.returncode != 0:
        status = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with status {proc.returncode}"
        )
        raise ConfigError(f"{shown} {status}", hint="Run the command by hand to see why it fails.")
    try:
        return proc.stdout.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{shown} printed no UTF-8 text", hint="Secrets are read as UTF-8 text.") from None


def resolve_passphrase(ref: SecretSource) -> str:
    """A repository passphrase from ``ref``; ConfigError when it is empty (an empty passphrase protects
    nothing, and when opening it is a mistake, not a wrong passphrase).

    A passphrase enters no other syntax (it goes into the KDF), so any other character is fine.
    """
    value = ref.resolve()
    if not value:
        raise ConfigError(
            f"the passphrase from {ref.describe()} is empty",
            hint="Put the passphrase there (an empty one is never accepted), or unset it to be asked for it.",
        )
    return value


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse a dotenv file (KEY=value, optional quotes, comments, ``export`` prefix) into a dict."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        k, v = line.split("=", 1)
        k, v = k.strip(), v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                v = v.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in v:
            v = v.split(" #", 1)[0].rstrip()
        out[k] = v
    return out
