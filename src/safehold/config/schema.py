"""The configuration schema: pydantic models, the single source of truth for the TOML file.

Glossary of the top-level tables (every option carries a description and an example; the sample
configuration and the README reference are generated from them by :mod:`safehold.config.docgen`):

* ``repository`` / ``offsite.<name>`` — where snapshots live (URL, passphrase reference, backend options).
* ``components.<name>`` — a named source: ``kind`` (from :mod:`safehold.sources.registry`), ``optional``,
  and the rest of the table is the kind's own ``Options`` model (validated by it).
* ``profiles.<name>`` — components to back up together, tags, retention, off-site copies.
* ``defaults``, ``objectives``, ``notifications``, ``drill``, ``hooks``, ``health_checks``.

Validation of a whole document, with every problem and its path, is :func:`safehold.config.loader.validate`;
``Config.model_validate`` alone also validates everything but reports component and cross-reference
problems in one combined message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from safehold.config import tomlwrite
from safehold.config.secrets import SecretRef
from safehold.sources import registry

#: Validation context key: when set, the models skip the checks :func:`loader.validate` does itself.
COLLECT = "safehold_collect_errors"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"^\s*(\d+\s*[smhdw]\s*)+$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SECRETISH_OPTION = re.compile(r"(password|passphrase|secret|token)", re.I)


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"24h"``, ``"7d"``, ``"1h30m"``, ``"2w"`` -> timedelta; raises ValueError otherwise."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration: write a number and a unit s, m, h, d or w ('24h')")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]


def _check_name(what: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r}: use lowercase letters, digits, '-' and '_'")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


# ------------------------------------------------------------------------------------------ repository
class RepositorySettings(_Model):
    """Where snapshots are stored and how the repository is opened."""

    url: str = Field(
        min_length=1,
        description="Repository location: a local path, sftp://user@host//path or s3://bucket/prefix.",
        examples=["/srv/backup/safehold", "sftp://backup@backup.example.com//srv/safehold"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Where the repository passphrase comes from; when absent, SAFEHOLD_PASSWORD, "
        "SAFEHOLD_PASSWORD_FILE, SAFEHOLD_PASSWORD_COMMAND or a prompt.",
        examples=[{"file": "/root/.safehold-pass"}],
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options passed to open_backend (connections, timeout, region, endpoint_url, "
        "storage_class, identity_file, ...). Credentials belong in the environment, not here.",
        examples=[{"connections": 4}],
    )

    @field_validator("options")
    @classmethod
    def _no_literal_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if _SECRETISH_OPTION.search(key) and isinstance(item, str):
                raise ValueError(
                    f"option {key!r} looks like a secret: pass credentials through the environment "
                    "(AWS_SECRET_ACCESS_KEY, an SSH key file), never in the configuration"
                )
        return value


class OffsiteSettings(RepositorySettings):
    """A second repository that snapshots are copied to after a successful backup."""

    url: str = Field(
        min_length=1,
        description="Off-site repository location: sftp://user@host//path, s3://bucket/prefix or a path.",
        examples=["sftp://backup@backup.example.com//srv/safehold", "s3://company-backups/app"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Where this repository's passphrase comes from; when absent, the main repository's.",
        examples=[{"env": "OFFSITE_PASSWORD"}],
    )


# ------------------------------------------------------------------------------------------ components
class Component(_Model):
    """A named source. In TOML the table holds ``kind``, ``optional`` and the kind's own options."""

    kind: str = Field(
        description="The source kind (files, mysql, postgresql, sqlite, redis, git, system, "
        "system-info, command, saas/retell, saas/calcom).",
        examples=["files"],
    )
    optional: bool = Field(
        default=False,
        description="A failure of an optional component is reported but does not fail the backup.",
        examples=[False],
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The kind's options (the rest of the table), validated by the kind's Options model.",
        examples=[{"paths": ["/var/www/app"]}],
    )

    @model_validator(mode="before")
    @classmethod
    def _fold_options(cls, data: Any) -> Any:
        return fold_component(data)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in registry.kinds():
            raise ValueError(f"unknown source kind {value!r}; known kinds: {', '.join(registry.kinds())}")
        return value

    @model_validator(mode="after")
    def _options_valid(self, info: ValidationInfo) -> Component:
        if not (info.context or {}).get(COLLECT):
            try:
                self.parsed_options()
            except ValidationError as exc:
                raise ValueError("; ".join(f"At '{loc}': {msg}" for loc, msg in error_lines(exc))) from None
        return self

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        flat = {k: data[k] for k in ("kind", "optional") if k in data}
        return {**flat, **data.get("options", {})}

    def options_model(self) -> type[BaseModel]:
        """The pydantic Options model of this component's kind (imports the source module)."""
        model: type[BaseModel] = registry.source_class(self.kind).Options
        return model

    def parsed_options(self) -> BaseModel:
        """The options validated by the kind's Options model; raises pydantic.ValidationError."""
        return self.options_model().model_validate(self.options)


def fold_component(data: Any) -> Any:
    """A component table in TOML form (kind, optional, options...) -> ``{kind, optional, options}``.

    A dict that already has only ``kind``/``optional``/``options`` (the Python form) is left alone.
    """
    if isinstance(data, dict) and not ("options" in data and set(data) <= {"kind", "optional", "options"}):
        return {
            **{k: data[k] for k in ("kind", "optional") if k in data},
            "options": {k: v for k, v in data.items() if k not in ("kind", "optional")},
        }
    return data


# ------------------------------------------------------------------------------------------ profiles
class Retention(_Model):
    """How many snapshots to keep per period (the newest of each period); absent means none by period."""

    last: int | None = Field(default=None, ge=0, description="Keep the newest N snapshots.", examples=[3])
    hourly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N hours.", examples=[24]
    )
    daily: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N days.", examples=[7]
    )
    weekly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N weeks.", examples=[4]
    )
    monthly: int | None = Field(
        default=None,
        ge=0,
        description="Keep the newest snapshot of each of the last N months.",
        examples=[12],
    )
    yearly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N years.", examples=[3]
    )


class Profile(_Model):
    """Components backed up together, with their tags, retention and off-site copies."""

    components: list[str] = Field(
        min_length=1,
        description="Names of the components in this profile (each must be defined under [components]).",
        examples=[["app", "database"]],
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Tags recorded on every snapshot of this profile.",
        examples=[["quick"]],
    )
    retention: Retention | None = Field(
        default=None,
        description="Which snapshots of this profile 'forget' keeps; absent means keep all.",
        examples=[{"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}],
    )
    offsite: list[str] = Field(
        default_factory=list,
        description="Off-site repositories (names under [offsite]) the snapshot is copied to after a "
        "successful backup.",
        examples=[["backupserver"]],
    )


class Defaults(_Model):
    """What commands use when not told otherwise."""

    profile: str | None = Field(
        default=None,
        description="Profile 'safehold backup' runs without --profile (must be defined under [profiles]).",
        examples=["quick"],
    )


class Objectives(_Model):
    """Recovery objectives that 'status' and 'drill' measure against."""

    rpo: Duration | None = Field(
        default=None,
        description="Recovery point objective: the newest good snapshot must be younger than this.",
        examples=["24h"],
    )
    rto: Duration | None = Field(
        default=None,
        description="Recovery time objective: a restore drill must finish within this.",
        examples=["1h"],
    )


Event = Literal["start", "success", "failure", "warning"]


class Notifications(_Model):
    """Who hears about backups, checks and drills."""

    urls: list[SecretRef] = Field(
        default_factory=list,
        description="Apprise URLs (Slack, e-mail, ...) as secret references: they embed tokens.",
        examples=[[{"env": "SLACK_WEBHOOK_URL"}]],
    )
    on: list[Event] = Field(
        default_factory=lambda: list[Event](["failure"]),
        description="Events that are sent to the URLs.",
        examples=[["failure", "success"]],
    )
    healthchecks_ping: SecretRef | None = Field(
        default=None,
        description="A healthchecks.io-style ping URL (start, success and /fail are pinged).",
        examples=[{"env": "HC_PING_URL"}],
    )
    timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds allowed per notification; a failed notification never fails the backup.",
        examples=[10],
    )


class Drill(_Model):
    """Restore drills: restore into a sandbox, load dumps into scratch servers, verify, time it."""

    profile: str | None = Field(
        default=None,
        description="Profile whose newest snapshot is drilled (default: defaults.profile).",
        examples=["quick"],
    )
    schedule: str = Field(
        default="monthly",
        description="When 'schedule install' runs the drill (a systemd OnCalendar expression).",
        examples=["monthly", "Sun *-*-01..07 04:00"],
    )
    sandbox: str = Field(
        default="/var/tmp/safehold-drill",
        description="Folder the drill restores files into (emptied before each drill).",
        examples=["/var/tmp/safehold-drill"],
    )
    keep_sandbox: bool = Field(
        default=False,
        description="Keep the restored files and scratch databases after the drill for inspection.",
        examples=[False],
    )
    mysql_scratch_host: str = Field(
        default="127.0.0.1",
        description="MySQL/MariaDB server that drill dumps are loaded into (into new scratch databases).",
        examples=["127.0.0.1"],
    )
    mysql_scratch_port: int = Field(
        default=3306, ge=1, le=65535, description="Port of the MySQL scratch server.", examples=[3306]
    )
    mysql_scratch_user: str = Field(
        default="root",
        description="User that may create and drop the scratch databases.",
        examples=["drill"],
    )
    mysql_scratch_password: SecretRef | None = Field(
        default=None,
        description="Where the scratch MySQL user's password comes from; none for no password.",
        examples=[{"env": "DRILL_MYSQL_PASSWORD"}],
    )
    postgresql_scratch_host: str = Field(
        default="127.0.0.1",
        description="PostgreSQL server that drill dumps are loaded into.",
        examples=["127.0.0.1"],
    )
    postgresql_scratch_port: int = Field(
        default=5432, ge=1, le=65535, description="Port of the PostgreSQL scratch server.", examples=[5432]
    )
    postgresql_scratch_user: str = Field(
        default="postgres",
        description="Role that may create and drop the scratch databases.",
        examples=["postgres"],
    )
    postgresql_scratch_password: SecretRef | None = Field(
        default=None,
        description="Where the scratch PostgreSQL role's password comes from.",
        examples=[{"env": "DRILL_PGPASSWORD"}],
    )


class Hook(_Model):
    """A program run before or after a backup (maintenance mode, pausing queue workers, ...)."""

    command: list[str] = Field(
        min_length=1,
        description="The program and its arguments (argv; no shell).",
        examples=[["php", "/var/www/app/artisan", "down"]],
    )
    on_failure: Literal["abort", "continue"] = Field(
        default="abort",
        description="When the program fails or times out: 'abort' stops the run and fails it (before a "
        "backup: no snapshot is taken), 'continue' logs a warning and goes on.",
        examples=["abort", "continue"],
    )
    timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds after which the program is killed (which counts as a failure).",
        examples=[120],
    )
    always: bool = Field(
        default=False,
        description="after_backup only: run even when the backup failed (to undo a before_backup hook).",
        examples=[True],
    )
    cwd: str | None = Field(
        default=None, description="Working directory of the program.", examples=["/var/www/app"]
    )


class Hooks(_Model):
    """Programs run around a backup, in order."""

    before_backup: list[Hook] = Field(
        default_factory=list,
        description="Run before the backup starts.",
        examples=[[{"command": ["php", "/var/www/app/artisan", "down"], "on_failure": "abort"}]],
    )
    after_backup: list[Hook] = Field(
        default_factory=list,
        description="Run after the backup (with always = true also after a failed one).",
        examples=[
            [{"command": ["php", "/var/www/app/artisan", "up"], "on_failure": "continue", "always": True}]
        ],
    )

    @field_validator("before_backup")
    @classmethod
    def _always_only_after(cls, value: list[Hook]) -> list[Hook]:
        if any(h.always for h in value):
            raise ValueError("'always' is only meaningful in after_backup hooks")
        return value


_CHECK_FIELDS: dict[str, set[str]] = {
    "http": {"url", "expect_status", "contains"},
    "mysql": {"component", "dsn", "query"},
    "redis": {"component"},
    "command": {"command"},
}


class HealthCheck(_Model):
    """A check that the application works, run by drills and after restores."""

    name: str = Field(min_length=1, description="Name shown in reports.", examples=["website"])
    kind: Literal["http", "mysql", "redis", "command"] = Field(
        description="http (url, expect_status), mysql (component or dsn, query), redis (component, PING), "
        "command (command; exit status 0 is healthy).",
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
        default=None, description="http: text the response body must contain.", examples=["ok"]
    )
    component: str | None = Field(
        default=None,
        description="mysql/redis: the component whose connection settings are used.",
        examples=["database"],
    )
    dsn: SecretRef | None = Field(
        default=None,
        description="mysql: a mysql://user:password@host:port/db URL instead of a component (a secret).",
        examples=[{"env": "HEALTH_MYSQL_DSN"}],
    )
    query: str = Field(
        default="SELECT 1", description="mysql: the query that must succeed.", examples=["SELECT 1"]
    )
    command: list[str] | None = Field(
        default=None,
        description="command: the program and its arguments.",
        examples=[["php", "/var/www/app/artisan", "queue:monitor", "default"]],
    )

    @model_validator(mode="after")
    def _fields_for_kind(self) -> HealthCheck:
        allowed = _CHECK_FIELDS[self.kind] | {"name", "kind", "timeout"}
        stray = sorted(
            f
            for f, info in type(self).model_fields.items()
            if f not in allowed and getattr(self, f) != info.get_default(call_default_factory=True)
        )
        if stray:
            raise ValueError(f"{', '.join(stray)} not used by a {self.kind} check")
        if self.kind == "http" and not self.url:
            raise ValueError("an http check needs 'url'")
        if self.kind == "mysql" and (self.component is None) == (self.dsn is None):
            raise ValueError("a mysql check needs exactly one of 'component' or 'dsn'")
        if self.kind == "redis" and not self.component:
            raise ValueError("a redis check needs 'component'")
        if self.kind == "command" and not self.command:
            raise ValueError("a command check needs 'command'")
        return self


# ------------------------------------------------------------------------------------------ the file
class Config(_Model):
    """A whole safehold configuration file."""

    version: Literal[1] = Field(default=1, description="Configuration format version.", examples=[1])
    repository: RepositorySettings = Field(description="The main repository: where snapshots are written.")
    offsite: dict[str, OffsiteSettings] = Field(
        default_factory=dict,
        description="Named off-site repositories that profiles copy snapshots to.",
        examples=[{"backupserver": {"url": "sftp://backup@backup.example.com//srv/safehold"}}],
    )
    components: dict[str, Component] = Field(
        default_factory=dict,
        description="Named components, each a source of one kind: what a backup consists of. A snapshot "
        "holds one folder per component.",
        examples=[{"app": {"kind": "files", "paths": ["/var/www/app"]}}],
    )
    profiles: dict[str, Profile] = Field(
        default_factory=dict,
        description="Named profiles: which components are backed up together.",
        examples=[{"quick": {"components": ["app", "database"]}}],
    )
    defaults: Defaults = Field(
        default_factory=Defaults, description="What commands use when not told otherwise."
    )
    objectives: Objectives = Field(
        default_factory=Objectives,
        description="Recovery objectives that 'status' and 'drill' measure against.",
    )
    notifications: Notifications = Field(
        default_factory=Notifications, description="Who hears about backups, checks and drills."
    )
    drill: Drill = Field(
        default_factory=Drill,
        description="Restore drills: restore into a sandbox, load dumps into scratch servers, verify, time it.",
    )
    hooks: Hooks = Field(
        default_factory=Hooks,
        description="Programs run before and after a backup (maintenance mode, pausing queue workers).",
    )
    health_checks: list[HealthCheck] = Field(
        default_factory=list,
        description="Checks that the application works, run by drills and after restores.",
        examples=[[{"name": "website", "kind": "http", "url": "https://app.example.com/health"}]],
    )

    @field_validator("offsite", "components", "profiles")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for name in value:
            _check_name(str(info.field_name).rstrip("s"), name)
        return value

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Config:
        if not (info.context or {}).get(COLLECT):
            problems = cross_reference_problems(self.model_dump(mode="json", exclude_none=True))
            if problems:
                raise ValueError("; ".join(f"At '{format_loc(loc)}': {msg}" for loc, msg in problems))
        return self

    # -------------------------------------------------------------------------------------- use
    def build_source(self, name: str) -> Any:
        """Instantiate the registered source class of component ``name`` with its validated Options.

        Raises ConfigError for an unknown component name.
        """
        from safehold.errors import ConfigError

        try:
            comp = self.components[name]
        except KeyError:
            raise ConfigError(
                f"no component {name!r} in the configuration",
                hint=f"Defined components: {', '.join(sorted(self.components)) or '(none)'}.",
            ) from None
        cls = registry.source_class(comp.kind)
        return cls(name, comp.parsed_options())

    def profile_components(self, profile: str | None = None) -> list[str]:
        """Component names of ``profile`` (default: defaults.profile; all components without one)."""
        from safehold.errors import ConfigError

        name = profile or self.defaults.profile
        if name is None:
            return list(self.components)
        if name not in self.profiles:
            raise ConfigError(
                f"no profile {name!r} in the configuration",
                hint=f"Defined profiles: {', '.join(sorted(self.profiles)) or '(none)'}.",
            )
        return list(self.profiles[name].components)

    def to_toml(self) -> str:
        """The configuration as TOML (secret references only, never values); loads back equal.

        Only what was set is written (defaults stay implicit), so the file stays short and readable.
        """
        data = self.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        return tomlwrite.dumps({"version": self.version, **data})


# ------------------------------------------------------------------------------------------ helpers
Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``("hooks", "before_backup", 0, "command")`` -> ``hooks.before_backup[0].command``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def error_lines(exc: ValidationError, prefix: Loc = ()) -> list[tuple[str, str]]:
    """Each error of ``exc`` as (dotted path, message), paths prefixed; the input is never shown."""
    out = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        out.append((format_loc((*prefix, *err["loc"])), msg))
    return out


def cross_reference_problems(data: Any) -> list[tuple[Loc, str]]:
    """Names that must refer to something defined elsewhere in the document ``data`` (a raw dict).

    Tolerates malformed parts (they are reported by the structural validation): profiles name existing
    components and off-site repositories, defaults.profile and drill.profile exist, health checks name
    components of a fitting kind.
    """
    if not isinstance(data, dict):
        return []
    problems: list[tuple[Loc, str]] = []

    def names(section: str) -> dict[str, Any]:
        value = data.get(section)
        return value if isinstance(value, dict) else {}

    components, offsite, profiles = names("components"), names("offsite"), names("profiles")
    for pname, prof in profiles.items():
        if not isinstance(prof, dict):
            continue
        for field, known, what in (
            ("components", components, "component"),
            ("offsite", offsite, "off-site repository"),
        ):
            refs = prof.get(field)
            if not isinstance(refs, list):
                continue
            for i, ref in enumerate(refs):
                if isinstance(ref, str) and ref not in known:
                    problems.append(
                        (
                            ("profiles", pname, field, i),
                            f"no {what} named {ref!r} (defined: {', '.join(sorted(known)) or 'none'})",
                        )
                    )
    for section in ("defaults", "drill"):
        table = data.get(section)
        if (
            isinstance(table, dict)
            and isinstance(table.get("profile"), str)
            and table["profile"] not in profiles
        ):
            problems.append(
                (
                    (section, "profile"),
                    f"no profile named {table['profile']!r} (defined: {', '.join(sorted(profiles)) or 'none'})",
                )
            )
    checks = data.get("health_checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, dict) or not isinstance(check.get("component"), str):
            continue
        ref = check["component"]
        comp = components.get(ref)
        if comp is None:
            problems.append((("health_checks", i, "component"), f"no component named {ref!r}"))
            continue
        want = {"mysql": "mysql", "redis": "redis"}.get(str(check.get("kind")))
        if want and isinstance(comp, dict) and comp.get("kind") != want:
            problems.append((("health_checks", i, "component"), f"component {ref!r} is not of kind {want!r}"))
    return problems
