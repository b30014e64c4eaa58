"""Settings of a ``system`` component (its collectors), and what a restore of it may be told."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: A collector's name (the built-ins' and those of ``extra``).
COLLECTOR_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _patterns(values: list[str]) -> list[str]:
    for v in values:
        parts = v.split("/")
        if not v or v.startswith("/") or ".." in parts or "" in parts:
            raise ValueError(f"{v!r}: use a path relative to root, without '..'")
    return values


class SystemOptions(BaseModel):
    """Settings of a ``system`` component. Every path is a glob relative to ``root``."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        default="/", description="The file system root the paths are relative to.", examples=["/"]
    )
    nginx: list[str] = Field(
        default=["etc/nginx"], description="nginx configuration.", examples=[["etc/nginx"]]
    )
    php_fpm: list[str] = Field(
        default=["etc/php/*/fpm"], description="PHP-FPM configuration of every PHP version.", examples=[[]]
    )
    supervisor: list[str] = Field(
        default=["etc/supervisor"], description="supervisor configuration.", examples=[["etc/supervisor"]]
    )
    cron: list[str] = Field(
        default=["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.*"],
        description="Users' crontabs (restored with owner and mode) and the system cron folders.",
        examples=[["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.*"]],
    )
    redis: list[str] = Field(
        default=["etc/redis"], description="Redis configuration.", examples=[["etc/redis"]]
    )
    systemd: list[str] = Field(
        default=["etc/systemd/system"],
        description="Local systemd units and their enablement symlinks.",
        examples=[["etc/systemd/system"]],
    )
    letsencrypt: list[str] = Field(
        default=[
            "etc/letsencrypt/live",
            "etc/letsencrypt/archive",
            "etc/letsencrypt/renewal",
            "etc/letsencrypt/accounts",
            "etc/letsencrypt/renewal-hooks",
        ],
        description="Let's Encrypt certificates, keys, renewal settings and ACME account (symlinks kept).",
        examples=[["etc/letsencrypt/live", "etc/letsencrypt/archive", "etc/letsencrypt/renewal"]],
    )
    certificate_min_days: int = Field(
        default=14,
        ge=0,
        description="Drills: a restored certificate (Let's Encrypt live/*/cert.pem, nginx's ssl_certificate) "
        "that expires within this many days is a finding; 0: only an expired one.",
        examples=[14],
    )
    extra: dict[str, list[str]] = Field(
        default_factory=dict,
        description="More collectors: name -> glob patterns relative to root.",
        examples=[{"php_cli": ["etc/php/*/cli"], "logrotate": ["etc/logrotate.d"]}],
    )

    @field_validator("nginx", "php_fpm", "supervisor", "cron", "redis", "systemd", "letsencrypt")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, pats in value.items():
            if not COLLECTOR_NAME.match(name) or name in BUILTIN:
                raise ValueError(f"{name!r}: use a new lowercase name (letters, digits, '_', '-')")
            _patterns(pats)
        return value

    def collectors(self) -> dict[str, list[str]]:
        """Every collector with its patterns, built-ins first, disabled (empty) ones left out."""
        found = {name: list(getattr(self, name)) for name in BUILTIN}
        found.update(self.extra)
        return {k: v for k, v in found.items() if v}


BUILTIN = ("nginx", "php_fpm", "supervisor", "cron", "redis", "systemd", "letsencrypt")


class SystemRestoreOptions(BaseModel):
    """What a restore of a ``system`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(
        default=None, description="Restore below this folder instead of the root."
    )
    collectors: list[str] | None = Field(default=None, description="Restore only these collectors.")
