"""What a profile backup writes at the snapshot root: ``metadata.json``, ``backup.log``, ``RESTORE.md``.

The restore guide is generated for the one snapshot it sits in: what is inside, which components hold
secrets, and the exact commands to restore each component and the whole server, in order.
"""

from __future__ import annotations

import json
import platform
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from safehold import __version__
from safehold.errors import SafeholdError
from safehold.operations.backup.bootstrap import install_commands, python_version
from safehold.sources import registry
from safehold.sources.base import Source

#: Within one rank, components with these names come first, in this order (the application's code
#: before its configuration and its uploads).
_FILES_ORDER = ["app", "config", "storage", "docs", "scripts"]


class ResultLike(Protocol):
    name: str
    kind: str
    status: str
    duration: float
    size: int
    metadata: dict[str, Any]
    error: str | None
    log: list[str]
    optional: bool


def restore_order(components: Sequence[tuple[str, str]]) -> list[str]:
    """Component names in dependency order, from ``(name, kind)`` pairs: by each kind's
    :attr:`~safehold.sources.base.Source.restore_rank`, then by name."""

    def key(item: tuple[str, str]) -> tuple[int, int, str]:
        name, kind = item
        f = _FILES_ORDER.index(name) if name in _FILES_ORDER else len(_FILES_ORDER)
        return (registry.source_class(kind).restore_rank, f, name)

    return [n for n, _ in sorted(components, key=key)]


def _source(name: str, kind: str, options: dict[str, Any]) -> Source | None:
    """The component's source (None when its settings no longer validate: the guide still lists it)."""
    try:
        return registry.source_class(kind)(name, options)
    except (SafeholdError, ValueError):
        return None


def holds_secrets(name: str, kind: str, options: dict[str, Any]) -> str | None:
    """Why a component holds secrets (for the guide and exports), or None."""
    source = _source(name, kind, options)
    return source.secrets_note() if source is not None else None


def metadata_json(
    *, profile: str | None, started: datetime, results: Sequence[ResultLike], tags: list[str]
) -> bytes:
    doc = {
        "safehold_version": __version__,
        "host": socket.gethostname(),
        "os": platform.platform(),
        "profile": profile,
        "tags": tags,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "components": {
            r.name: {
                "kind": r.kind,
                "status": r.status,
                "optional": r.optional,
                "duration_seconds": r.duration,
                "size_bytes": r.size,
                "error": r.error,
                "metadata": r.metadata,
            }
            for r in results
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode() + b"\n"


def backup_log(lines: list[str], results: Sequence[ResultLike]) -> bytes:
    """``backup.log``: the run's own lines (before-backup hooks), then each component's lines in the order
    they were written, ending with its result line. Every line starts with its UTC time. The after-backup
    hooks run once the snapshot is written, so the log ends by saying where their results are."""
    out = list(lines)
    for r in results:
        for line in r.log:
            stamp, _, text = line.partition(" ")
            out.append(f"{stamp} [{r.name}] {text}")
    out.append("after_backup hooks and off-site copies run after this snapshot is written: their results")
    out.append("are in the output of the backup command (and its --json).")
    return ("\n".join(out) + "\n").encode()


def restore_guide(
    *,
    repo_location: str,
    profile: str | None,
    results: Sequence[ResultLike],
    component_options: dict[str, dict[str, Any]],
) -> bytes:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = socket.gethostname()
    order = restore_order([(r.name, r.kind) for r in results if r.status == "ok"])
    by_name = {r.name: r for r in results}
    lines = [
        f"# Restore guide — {host}, {when}",
        "",
        f"This snapshot was taken by safehold {__version__} on `{host}` with profile `{profile or '-'}`.",
        "It holds one folder per component. The snapshot id is printed by `safehold snapshots`;",
        "below, `SNAP` stands for it (or use `latest`).",
        "",
        "## What is inside",
        "",
        "| component | kind | status | size | holds secrets |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        secret = holds_secrets(r.name, r.kind, component_options.get(r.name, {})) or "no"
        lines.append(f"| {r.name} | {r.kind} | {r.status} | {r.size} bytes | {secret} |")
    failed = [r for r in results if r.status != "ok"]
    if failed:
        lines += ["", "**Not in this snapshot** (the component failed at backup time):", ""]
        lines += [f"- `{r.name}`: {r.error}" for r in failed]
    lines += [
        "",
        "## Whole server (bare metal)",
        "",
        "On a fresh Debian/Ubuntu host with nothing but the repository and its passphrase: install",
        f"safehold from the repository's own `bootstrap/` folder (wheels for Python {python_version()}, no",
        "network needed; `bootstrap/README.md` says more), then restore:",
        "",
        "```sh",
        *install_commands(repo_location),
        f"export SAFEHOLD_REPOSITORY='{repo_location}'",
        "export SAFEHOLD_PASSWORD_FILE=/root/.safehold-pass   # the repository passphrase",
        "safehold restore all --snapshot SNAP --dry-run        # read the plan first",
        "safehold restore all --snapshot SNAP --install-packages --yes",
        "```",
        "",
        "The configuration travels inside the snapshot (`safehold.toml`), so no local configuration is",
        "needed. Components are restored in this order:",
        "",
    ]
    for i, name in enumerate(order, 1):
        lines.append(f"{i}. `{name}` ({by_name[name].kind})")
    lines += ["", "## One component at a time", ""]
    for name in order:
        r = by_name[name]
        lines.append(f"### {name} ({r.kind})")
        lines.append("")
        lines.append("```sh")
        lines.append(f"safehold restore {name} --snapshot SNAP --dry-run")
        lines.append(f"safehold restore {name} --snapshot SNAP")
        source = _source(name, r.kind, component_options.get(name, {}))
        lines += source.restore_hints() if source is not None else []
        lines.append("```")
        lines.append("")
    lines += [
        "## Without safehold",
        "",
        "`safehold export SNAP /some/dir` writes plain files (tar.gz archives, gzip'ed SQL dumps, JSON",
        "exports) and a `checksums.txt` for `sha256sum -c`, for people and tools without safehold.",
        "",
        "## After restoring",
        "",
        "Check: the website loads, the admin panel is reachable, the database is connected, uploads work,",
        "queue workers run (`supervisorctl status`), cron jobs are active, the TLS certificate is valid,",
        "Redis answers, e-mail is sent, logs are written. `safehold restore all` runs the configured health",
        "checks and prints their results.",
        "",
    ]
    return "\n".join(lines).encode()
