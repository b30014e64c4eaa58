"""The ``generic`` preset: nothing application-specific.

Components: ``system`` (every built-in collector below ``root``), ``system-info``, and ``files`` for
the paths given. Profiles: ``quick`` (files when paths were given, else system) and ``full`` (all).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safehold.config.presets.discovery import (
    Discovery,
    Finding,
    build,
    default_repository,
    repository_table,
    system_component,
)
from safehold.secrets import SecretRef
from safehold.sources.system import BUILTIN, SystemOptions


def discover_generic(
    root: Path = Path("/"),
    *,
    paths: Sequence[Path] = (),
    home: Path | None = None,
    repo_url: str | None = None,
    repo_password: SecretRef | None = None,
) -> Discovery:
    """System configuration and information below ``root`` plus a files component for ``paths``."""
    found: list[Finding] = []
    missing: list[Finding] = []
    defaults = SystemOptions()
    for name in BUILTIN:
        patterns: list[str] = getattr(defaults, name)
        hits = [p for p in patterns if any(root.glob(p))]
        if hits:
            found.append(Finding(name, ", ".join(hits)))
        else:
            missing.append(Finding(name, f"nothing at {', '.join(patterns)} below {root}"))
    components: dict[str, Any] = {
        "system": system_component(root),
        "system-info": {"kind": "system-info", "root": str(root)},
    }
    present = [p for p in paths if p.exists()]
    missing += [Finding("files", f"{p} does not exist") for p in paths if not p.exists()]
    if present:
        components["files"] = {"kind": "files", "paths": [str(p) for p in present]}
        found.append(Finding("files", ", ".join(str(p) for p in present)))
    quick = ["files", "system"] if present else ["system"]
    data: dict[str, Any] = {
        "version": 1,
        "repository": repository_table(repo_url or default_repository(home), repo_password),
        "components": components,
        "profiles": {
            "quick": {
                "components": quick,
                "tags": ["quick"],
                "retention": {"daily": 7, "weekly": 4, "monthly": 12},
            },
            "full": {
                "components": list(components),
                "tags": ["full"],
                "retention": {"monthly": 12, "yearly": 3},
            },
        },
        "defaults": {"profile": "quick"},
        "objectives": {"rpo": "24h"},
        "schedule": {"backups": {"quick": "daily", "full": "weekly"}},
    }
    return Discovery(build(data), found, missing)
