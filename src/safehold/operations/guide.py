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
from safehold.operations.bootstrap import install_commands, python_version

#: Restore order by source kind: packages and system config first, services' data last.
KIND_ORDER = [
    "system-info",
    "system",
    "files",
    "git",
    "sqlite",
    "mysql",
    "postgresql",
    "redis",
    "saas/retell",
    "saas/calcom",
    "command",
]
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
    """Component names in dependency order, from ``(name, kind)`` pairs."""

    def key(item: tuple[str, str]) -> tuple[int, int, str]:
        name, kind = item
        k = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        f = _FILES_ORDER.index(name) if name in _FILES_ORDER else len(_FILES_ORDER)
        return (k, f, name)

    return [n for n, _ in sorted(components, key=key)]


def holds_secrets(name: str, kind: str, options: dict[str, Any]) -> str | None:
    """Why a component holds secrets (for the guide and exports), or None."""
    if kind == "files" and any(
        ".env" in p or "letsencrypt" in p or "ssl" in p for p in options.get("paths", [])
    ):
        return "environment files or keys (.env, TLS private keys)"
    if kind == "files" and name == "config":
        return "the application's .env (database, API and mail credentials)"
    if kind == "system" and options.get("letsencrypt", True) != []:
        return "TLS private keys (letsencrypt) and service configuration"
    if kind == "redis":
        return "cached sessions and tokens in the Redis dump"
    if kind in ("mysql", "postgresql", "sqlite"):
        return "the application's data (personal data, password hashes)"
    return None


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
        if r.kind in ("mysql", "postgresql"):
            lines.append(
                f"# into another server or name: safehold restore {name} --snapshot SNAP "
                "--db-host HOST --db-name NAME"
            )
        if r.kind == "files":
            lines.append(
                f"# somewhere else first: safehold restore {name} --snapshot SNAP --target-root /tmp/check"
            )
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
