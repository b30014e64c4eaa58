"""References to secrets: an environment variable, a file (optionally one key of a dotenv file), or a
command that prints the secret. A secret value itself never appears in configuration, logs or errors.

In TOML a reference is written as a table::

    password = { env = "DB_PASSWORD" }
    password = { file = "/var/www/app/.env", key = "DB_PASSWORD" }   # one key of a dotenv file
    password = { file = "/etc/safehold/db.pass" }                   # the whole file, trailing newline stripped
    api_key  = { command = "pass show retell/api-key" }

The compact string forms ``"env:NAME"``, ``"file:/path"``, ``"file:/path:KEY"`` and ``"command:..."``
(prefix case-insensitive) are references too. Any other string is a literal secret and a validation
error: a secret value must never be written into a configuration file.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safehold import syntax
from safehold.errors import ConfigError

#: The message a literal (non-reference) string gets wherever a secret is expected.
LITERAL_REFUSED = (
    "literal secrets are not allowed here: use {env=...}, {file=...} or {command=...} "
    "(or the strings 'env:NAME', 'file:/path', 'file:/path:KEY', 'command:...')"
)
#: Seconds a secret command (also --password-command) may run before it is killed.
SECRET_COMMAND_TIMEOUT = 60
_DOTENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


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


class SecretRef(BaseModel):
    """Where to find a secret. Exactly one of ``env``, ``file`` or ``command``."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    env: str | None = Field(
        default=None,
        description="Name of an environment variable holding the secret.",
        examples=["DB_PASSWORD"],
    )
    file: str | None = Field(
        default=None,
        description="Path of a file holding the secret (or a dotenv file, with `key`).",
        examples=["/var/www/app/.env"],
    )
    key: str | None = Field(
        default=None,
        description="With `file`: the key to read from a dotenv file.",
        examples=["DB_PASSWORD"],
    )
    command: str | None = Field(
        default=None,
        description="A command whose standard output is the secret (split like a shell, no shell run).",
        examples=["pass show safehold/repository"],
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            parsed = parse_reference_string(value)
            if parsed is None:
                raise ValueError(LITERAL_REFUSED)
            return parsed
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [x for x in (self.env, self.file, self.command) if x]
        if len(given) != 1:
            raise ValueError("a secret reference takes exactly one of 'env', 'file' or 'command'")
        if self.key and not self.file:
            raise ValueError("'key' is only valid together with 'file'")
        return self

    def describe(self) -> str:
        """Where the secret comes from, safe to show (never the value)."""
        if self.env:
            return f"env:{self.env}"
        if self.file:
            return f"file:{self.file}" + (f":{self.key}" if self.key else "")
        return f"command:{_program(self.command or '')}"

    def resolve(self) -> str:
        """Return the secret value; raises ConfigError (without the value) when it cannot be read."""
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(
                    f"environment variable {self.env} is not set",
                    hint=f"Export {self.env} before running safehold, or point the setting elsewhere.",
                )
            return value
        if self.file:
            return _read_file_secret(Path(self.file), self.key)
        return _run_secret_command(self.command or "")

    def resolve_for(self, into: syntax.Syntax, *, owner: str) -> str:
        """The secret, checked for the syntax it goes ``into``; UnsafeValue otherwise.

        ``owner`` names the setting, e.g. ``"component database: password"``; the error adds this
        reference (``from file:/var/www/app/.env:DB_PASSWORD``), never the value.
        """
        return syntax.check(self.resolve(), into, what=f"{owner} from {self.describe()}")


def resolve_secret(ref: SecretRef | dict[str, Any] | None, into: syntax.Syntax, *, owner: str) -> str | None:
    """:meth:`SecretRef.resolve_for` of ``ref`` (a SecretRef or its dict form, e.g. a restore option), or
    None without a reference."""
    if ref is None:
        return None
    if not isinstance(ref, SecretRef):
        ref = SecretRef.model_validate(ref)
    return ref.resolve_for(into, owner=owner)


def _read_file_secret(path: Path, key: str | None) -> str:
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


def _program(command: str) -> str:
    """The program a command runs, for messages (the arguments may hold secrets; never shown)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else ""


def _run_secret_command(command: str) -> str:
    """The standard output of ``command`` (split like a shell, run without one), trailing newline removed;
    ConfigError with a hint when it cannot be split, is not found, fails or outlasts the timeout."""
    shown = f"secret command {_program(command) or repr(command)}"
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


def resolve_passphrase(ref: SecretRef) -> str:
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
