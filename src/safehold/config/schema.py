"""The configuration schema: pydantic models, the single source of truth for the TOML file.

Glossary of the top-level tables (every option carries a description and an example; the sample
configuration and the README reference are generated from them by :mod:`safehold.config.docgen`):

* ``repository`` / ``offsite.<name>`` — where snapshots live (URL, passphrase reference, backend options).
* ``components.<name>`` — a named source: ``kind`` (from :mod:`safehold.sources.registry`), ``optional``,
  and the rest of the table is the kind's own ``Options`` model (validated by it).
* ``profiles.<name>`` — components to back up together, tags, retention, off-site copies.
* ``defaults``, ``objectives``, ``notifications``, ``drill``, ``schedule``, ``hooks``, ``health_checks``.

Validation of a whole document, with every problem and its path, is :func:`safehold.config.loader.validate`;
``Config.model_validate`` alone also validates everything but reports component and cross-reference
problems in one combined message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from safehold.config import tomlwrite
from safehold.config.duration import parse_duration
from safehold.config.healthchecks import HealthCheck
from safehold.config.notifications import Notifications, Target
from safehold.config.tables import (
    Defaults,
    Drill,
    Hook,
    Hooks,
    Objectives,
    OffsiteSettings,
    PreflightSettings,
    Profile,
    RepositorySettings,
    Retention,
    Schedule,
    StatusSettings,
)
from safehold.config.validation import (
    COLLECT,
    Duration,
    Loc,
    StrictModel,
    cross_reference_problems,
    error_lines,
    format_loc,
    named_entries,
)
from safehold.sources import registry
from safehold.sources.base import Source

__all__ = [
    "COLLECT",
    "Component",
    "Config",
    "Defaults",
    "Drill",
    "Duration",
    "HealthCheck",
    "Hook",
    "Hooks",
    "Loc",
    "Notifications",
    "Objectives",
    "OffsiteSettings",
    "PreflightSettings",
    "Profile",
    "RepositorySettings",
    "Retention",
    "Schedule",
    "StatusSettings",
    "Target",
    "cross_reference_problems",
    "error_lines",
    "fold_component",
    "format_loc",
    "parse_duration",
]


# ------------------------------------------------------------------------------------------ components
class Component(StrictModel):
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


# ------------------------------------------------------------------------------------------ the file
class Config(StrictModel):
    """A whole safehold configuration file."""

    version: Literal[1] = Field(default=1, description="Configuration format version.", examples=[1])
    repository: RepositorySettings = Field(description="The main repository: where snapshots are written.")
    offsite: Annotated[dict[str, OffsiteSettings], named_entries("offsite")] = Field(
        default_factory=dict,
        description="Named off-site repositories that profiles copy snapshots to.",
        examples=[{"backupserver": {"url": "sftp://backup@backup.example.com//srv/safehold"}}],
    )
    components: Annotated[dict[str, Component], named_entries("component")] = Field(
        default_factory=dict,
        description="Named components, each a source of one kind: what a backup consists of. A snapshot "
        "holds one folder per component.",
        examples=[{"app": {"kind": "files", "paths": ["/var/www/app"]}}],
    )
    profiles: Annotated[dict[str, Profile], named_entries("profile")] = Field(
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
    status: StatusSettings = Field(
        default_factory=StatusSettings, description="What 'status' publishes besides its output."
    )
    preflight: PreflightSettings = Field(
        default_factory=PreflightSettings,
        description="Checks before every backup: room on the repository, cache and temporary folders, and "
        "each component's own checks.",
    )
    notifications: Notifications = Field(
        default_factory=Notifications,
        description="Who hears about backups, checks, drills and prunes, and the dead-man's-switch ping.",
    )
    drill: Drill = Field(
        default_factory=Drill,
        description="Restore drills: restore into a sandbox, load dumps into scratch servers, verify, time it.",
    )
    schedule: Schedule = Field(
        default_factory=Schedule,
        description="When the backups, checks and prunes that 'safehold schedule install' sets up run.",
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

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Config:
        if not (info.context or {}).get(COLLECT):
            problems = cross_reference_problems(self.model_dump(mode="json", exclude_none=True))
            if problems:
                raise ValueError("; ".join(f"At '{format_loc(loc)}': {msg}" for loc, msg in problems))
        return self

    # -------------------------------------------------------------------------------------- use
    def build_source(self, name: str) -> Source:
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
