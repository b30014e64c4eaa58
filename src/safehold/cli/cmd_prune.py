"""``safehold prune``."""

from __future__ import annotations

import re
from typing import Any

import click

from safehold.cli.app import App, pass_app
from safehold.engine.prune.pruner import describe
from safehold.engine.util import human_bytes
from safehold.errors import UsageError
from safehold.operations.maintenance.prune import PruneOptions, PruneOutcome, prune

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(option: str, text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, flags=re.I)
    if not m:
        raise UsageError(f"{option} takes a size such as 500M or 2G, not {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_share(option: str, text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    if text.strip() == "unlimited":
        return float("inf")
    if not m or float(m.group(1)) > 100:
        raise UsageError(f"{option} takes a percentage such as 5% (or 'unlimited'), not {text!r}")
    return float(m.group(1)) / 100


def prune_options(f: Any) -> Any:
    f = click.option(
        "--pack-grace",
        default="1h",
        show_default=True,
        metavar="DURATION",
        help="Packs that no index names are deleted only when written longer ago than this (a backup "
        "still running may need them).",
    )(f)
    f = click.option(
        "--max-repack-size",
        metavar="SIZE",
        help="Copy at most this much used data while repacking (e.g. 2G; default: no limit).",
    )(f)
    f = click.option(
        "--max-unused",
        default="5%",
        show_default=True,
        metavar="PERCENT",
        help="Repack partly used packs until the unused data left is at most this share of the used data "
        "('0%': repack every pack with unused data; 'unlimited': delete only wholly unused packs).",
    )(f)
    return f


def options_from(params: dict[str, Any], dry_run: bool) -> PruneOptions:
    from safehold.config.duration import parse_duration

    grace_text = str(params.get("pack_grace") or "1h")
    try:
        grace = 0.0 if grace_text.strip() == "0" else parse_duration(grace_text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--pack-grace: {exc}") from None
    size = params.get("max_repack_size")
    return PruneOptions(
        max_unused=parse_share("--max-unused", str(params.get("max_unused") or "5%")),
        max_repack=parse_size("--max-repack-size", size) if size else None,
        grace=grace,
        dry_run=dry_run,
    )


def render(outcome: PruneOutcome) -> str:
    lines = describe(outcome.plan)
    lines += [f"removed stale lock: {s}" for s in outcome.stale_locks_removed]
    if outcome.temporary_files:
        verb = "would remove" if outcome.dry_run else "removed"
        lines.append(
            f"{verb} {outcome.temporary_files} temporary file(s) that interrupted writes left over a day ago"
        )
    r = outcome.result
    if outcome.dry_run or r is None:
        lines.append("dry run: nothing was changed")
    elif outcome.plan.nothing_to_do:
        lines.append("nothing to prune")
    else:
        lines.append(
            f"removed {r.packs_removed} pack(s) and {outcome.plan.blobs_removed} blob(s), wrote {r.packs_written} "
            f"new pack(s) and {r.index_written} index file(s) (replacing {r.index_removed})"
        )
        lines.append(
            f"repository size: {human_bytes(outcome.plan.size_before)} before, {human_bytes(r.size_after)} after"
        )
    return "\n".join(lines)


@click.command("prune")
@click.option(
    "-n", "--dry-run", is_flag=True, help="Show what would be deleted and repacked; change nothing."
)
@prune_options
@pass_app
def prune_cmd(app: App, /, dry_run: bool, **params: Any) -> None:
    """Delete data that no snapshot references: packs with no used blob are deleted, packs with much
    unused data are repacked, and the index is rewritten. Takes an exclusive lock (backups wait with
    --lock-wait, or fail); stops before deleting anything when the repository has problems (run 'safehold
    check')."""
    opts = options_from(params, dry_run)
    repo = app.open_repo()
    outcome = prune(repo, opts, app.progress())
    app.emit(outcome.as_dict(), render(outcome))


COMMANDS = [prune_cmd]
