"""The ``[[health_checks]]`` table: checks that the application works, run by ``verify-system``, at the end
of ``restore all`` and by drills.

One flat table per check; ``kind`` says which fields apply (:data:`CHECK_FIELDS`), and a field set for
another kind is an error, so a typo never silently does nothing. Values that become a URL, a host name, a
command argument or a path are validated here for that syntax (a configuration is untrusted input, and a
snapshot carries its own configuration into ``restore all``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from safehold.config.validation import Duration, absolute_path
from safehold.config.validation import StrictModel as _Model
from safehold.secrets import SecretRef

CheckKind = Literal[
    "http",
    "tcp",
    "mysql",
    "postgresql",
    "sqlite",
    "redis",
    "supervisor",
    "systemd",
    "crontab",
    "tls",
    "writable",
    "log",
    "command",
]

#: Fields each kind uses besides name, kind and timeout; the first group of each is required.
CHECK_FIELDS: dict[str, set[str]] = {
    "http": {"url", "expect_status", "contains"},
    "tcp": {"host", "port"},
    "mysql": {"component", "dsn", "min_tables", "query"},
    "postgresql": {"component", "dsn", "min_tables", "query"},
    "sqlite": {"component", "path", "min_tables"},
    "redis": {"component", "min_keys"},
    "supervisor": {"program", "path"},
    "systemd": {"unit"},
    "crontab": {"user", "path", "contains"},
    "tls": {"path", "host", "port", "server_name", "min_days"},
    "writable": {"path"},
    "log": {"path", "max_age"},
    "command": {"command", "contains", "cwd"},
}
#: Which component kind a check's ``component`` must name.
COMPONENT_KIND = {"mysql": "mysql", "postgresql": "postgresql", "sqlite": "sqlite", "redis": "redis"}

_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\[?[0-9A-Fa-f:.]+\]?$")
#: supervisor program (``group:name`` too), systemd unit, user name: never an option, no whitespace.
_NAME_ARG = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9_.:@\\-]{0,254}(:\*)?$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


class HealthCheck(_Model):
    """A check that the application works: one line in ``verify-system``, ``restore all`` and drills."""

    name: str = Field(
        min_length=1, max_length=100, description="Name shown in reports.", examples=["website"]
    )
    kind: CheckKind = Field(
        description="http (url: GET, expect_status, contains), tcp (host, port: connect), mysql / "
        "postgresql (component or dsn: the database exists and holds at least min_tables tables), "
        "sqlite (component or path: integrity and tables), redis (component: PING and at least "
        "min_keys keys), supervisor (program is RUNNING), systemd (unit is active), crontab (user's "
        "crontab or the cron file at path holds a line containing 'contains'), tls (certificate file "
        "at path, or host:port, valid for at least min_days days), writable (a file can be created in "
        "the folder path), log (the file at path was written within max_age), command (exit status 0, "
        "output containing 'contains' if given).",
        examples=["http"],
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds allowed for the check.", examples=[10])
    url: str | None = Field(
        default=None, description="http: the URL to GET.", examples=["https://app.example.com/health"]
    )
    expect_status: int = Field(
        default=200, ge=100, le=599, description="http: the expected status code.", examples=[200]
    )
    contains: str | None = Field(
        default=None,
        min_length=1,
        description="http: text the response body must contain; crontab: text a crontab line must contain "
        "(whitespace runs compare as one space); command: text the output must contain.",
        examples=["artisan schedule:run"],
    )
    host: str | None = Field(
        default=None, description="tcp, tls: host name or address to connect to.", examples=["127.0.0.1"]
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="tcp: port (required); tls: port (default 443).",
        examples=[443],
    )
    component: str | None = Field(
        default=None,
        description="mysql, postgresql, sqlite, redis: the component whose connection settings (and "
        "databases) are checked; after a restore, where the restore put them.",
        examples=["database"],
    )
    dsn: SecretRef | None = Field(
        default=None,
        description="mysql, postgresql: a mysql:// or postgresql://user:password@host:port/database URL "
        "instead of a component (a secret).",
        examples=[{"env": "HEALTH_DATABASE_URL"}],
    )
    min_tables: int = Field(
        default=1,
        ge=0,
        description="mysql, postgresql, sqlite: the least number of tables each database must hold.",
        examples=[1],
    )
    query: str | None = Field(
        default=None,
        description="mysql, postgresql: a query that must also succeed, run in the (first) database.",
        examples=["SELECT COUNT(*) FROM users"],
    )
    min_keys: int = Field(
        default=0, ge=0, description="redis: the least number of keys the server must hold.", examples=[1]
    )
    program: str | None = Field(
        default=None,
        description="supervisor: the program (or group:name) that must be RUNNING ('supervisorctl status').",
        examples=["laravel-worker:*"],
    )
    unit: str | None = Field(
        default=None,
        description="systemd: the unit that must be active ('systemctl is-active').",
        examples=["nginx.service"],
    )
    user: str | None = Field(
        default=None,
        description="crontab: whose crontab is read ('crontab -l -u USER').",
        examples=["www-data"],
    )
    path: Annotated[str, absolute_path()] | None = Field(
        default=None,
        description="sqlite: the database file (instead of a component); crontab: a cron file such as "
        "/etc/cron.d/app (instead of user); tls: a PEM certificate file; writable: a folder; log: a file; "
        "supervisor: supervisord's configuration file (default: where supervisorctl looks for it).",
        examples=["/var/www/app/storage/logs/laravel.log"],
    )
    server_name: str | None = Field(
        default=None,
        description="tls: the name the certificate must be valid for (default: host).",
        examples=["app.example.com"],
    )
    min_days: int = Field(
        default=14, ge=0, description="tls: days the certificate must still be valid.", examples=[14]
    )
    max_age: Duration | None = Field(
        default=None, description="log: how recently the file must have been written.", examples=["15m"]
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="command: the program and its arguments (argv; no shell).",
        examples=[["php", "/var/www/app/artisan", "queue:monitor", "default"]],
    )
    cwd: Annotated[str, absolute_path()] | None = Field(
        default=None, description="command: working directory of the program.", examples=["/var/www/app"]
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c in value for c in "\r\n\x00 ")
        ):
            raise ValueError("must be an http:// or https:// URL with a host name")
        return value

    @field_validator("host", "server_name")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.match(value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("program", "unit")
    @classmethod
    def _argument(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_ARG.match(value):
            raise ValueError(
                "must be a name (letters, digits, '_', '.', ':', '@', '-'; not starting with '-')"
            )
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.match(value):
            raise ValueError("must be a user name")
        return value

    @model_validator(mode="after")
    def _fields_for_kind(self) -> HealthCheck:
        allowed = CHECK_FIELDS[self.kind] | {"name", "kind", "timeout"}
        stray = sorted(
            f
            for f, info in type(self).model_fields.items()
            if f not in allowed and getattr(self, f) != info.get_default(call_default_factory=True)
        )
        if stray:
            raise ValueError(f"{', '.join(stray)} not used by a {self.kind} check")
        need: dict[str, tuple[tuple[str, ...], str]] = {
            "http": (("url",), "'url'"),
            "tcp": (("host", "port"), "'host' and 'port'"),
            "supervisor": (("program",), "'program'"),
            "systemd": (("unit",), "'unit'"),
            "crontab": (("contains",), "'contains'"),
            "writable": (("path",), "'path'"),
            "log": (("path", "max_age"), "'path' and 'max_age'"),
            "command": (("command",), "'command'"),
        }
        if self.kind in need:
            fields, text = need[self.kind]
            if any(getattr(self, f) is None for f in fields):
                raise ValueError(f"{'an' if self.kind == 'http' else 'a'} {self.kind} check needs {text}")
        one_of = {
            "mysql": ("component", "dsn"),
            "postgresql": ("component", "dsn"),
            "sqlite": ("component", "path"),
            "crontab": ("user", "path"),
            "tls": ("path", "host"),
        }
        if self.kind in one_of:
            a, b = one_of[self.kind]
            if (getattr(self, a) is None) == (getattr(self, b) is None):
                raise ValueError(f"a {self.kind} check needs exactly one of '{a}' or '{b}'")
        if self.kind == "redis" and not self.component:
            raise ValueError("a redis check needs 'component'")
        return self
