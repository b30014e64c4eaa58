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

Reading a secret (the variable, the file, the command) is :mod:`safehold.secretvalue`'s, which imports no
pydantic: the passphrase of a command without a configuration file is read through it alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safehold import secretvalue, syntax
from safehold.secretvalue import parse_reference_string

#: The message a literal (non-reference) string gets wherever a secret is expected.
LITERAL_REFUSED = (
    "literal secrets are not allowed here: use {env=...}, {file=...} or {command=...} "
    "(or the strings 'env:NAME', 'file:/path', 'file:/path:KEY', 'command:...')"
)


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

    @classmethod
    def of(cls, source: secretvalue.SecretSource) -> SecretRef:
        """``source`` as a SecretRef (a :class:`~safehold.secretvalue.Reference` the program made, e.g. for
        the passphrase variable, becomes one to write into a configuration)."""
        if isinstance(source, SecretRef):
            return source
        if isinstance(source, secretvalue.Reference):
            fields = {"env": source.env, "file": source.file, "key": source.key, "command": source.command}
            return cls(**{k: v for k, v in fields.items() if v is not None})
        raise TypeError(f"not a secret reference: {type(source).__name__}")

    def describe(self) -> str:
        """Where the secret comes from, safe to show (never the value)."""
        return secretvalue.describe(self)

    def resolve(self) -> str:
        """Return the secret value; raises ConfigError (without the value) when it cannot be read."""
        return secretvalue.resolve(self)

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
