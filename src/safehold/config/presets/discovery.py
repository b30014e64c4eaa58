"""The result of a discovery, and the pieces every preset shares (repository table, system components)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safehold.config.loader import validate
from safehold.config.schema import Config
from safehold.secrets import SecretRef
from safehold.sources.system import BUILTIN

DEFAULT_REPOSITORY = "/var/backups/safehold"


@dataclass
class Finding:
    """One line of the discovery report: ``what`` and a detail (what it is, or why it is missing)."""

    what: str
    detail: str


@dataclass
class Discovery:
    """What a preset found, what it did not find (with reasons), and the configuration it proposes."""

    config: Config
    found: list[Finding] = field(default_factory=list)
    missing: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "found": [{"what": f.what, "detail": f.detail} for f in self.found],
            "missing": [{"what": f.what, "reason": f.detail} for f in self.missing],
            "components": sorted(self.config.components),
            "profiles": sorted(self.config.profiles),
        }

    def report(self) -> str:
        """The human-readable report: found items, then missing ones with reasons."""
        width = max([len(f.what) for f in self.found + self.missing] + [8])
        lines = ["found:"]
        lines += [f"  + {f.what:<{width}}  {f.detail}" for f in self.found] or ["  (nothing)"]
        lines.append("not found:")
        lines += [f"  - {f.what:<{width}}  {f.detail}" for f in self.missing] or ["  (nothing)"]
        return "\n".join(lines)


def default_repository(home: Path | None = None) -> str:
    """Where a repository goes when none is named: /var/backups for root, else below the home folder."""
    if os.geteuid() == 0:
        return DEFAULT_REPOSITORY
    return str((home or Path.home()) / "safehold-repository")


def repository_table(url: str, password: SecretRef | None) -> dict[str, Any]:
    table: dict[str, Any] = {"url": url}
    if password is not None:
        table["password"] = password.model_dump(exclude_none=True)
    return table


def system_component(
    root: Path, only: tuple[str, ...] | None = None, **overrides: list[str]
) -> dict[str, Any]:
    """A ``system`` component; with ``only`` every other built-in collector is switched off."""
    comp: dict[str, Any] = {"kind": "system", "root": str(root)}
    if only is not None:
        comp.update({name: [] for name in BUILTIN if name not in only})
    comp.update(overrides)
    return comp


def build(data: dict[str, Any]) -> Config:
    """Validate a proposed configuration (a failure here is a bug in the preset, reported as such)."""
    return validate(data, "proposed configuration")
