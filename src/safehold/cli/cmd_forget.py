"""``safehold forget``, ``pin`` and ``unpin``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from safehold.cli.app import App, pass_app
from safehold.cli.cmd_prune import options_from, prune_options
from safehold.cli.cmd_prune import render as render_prune
from safehold.engine.prune.retention import BUCKETS, GROUP_FIELDS, Policy
from safehold.errors import UsageError
from safehold.operations.maintenance.forget import IDS_KEY, ForgetResult, Selection, forget, set_pinned
from safehold.operations.maintenance.prune import prune


def _duration(option: str, value: str | None) -> timedelta | None:
    if value is None:
        return None
    from safehold.config.duration import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _group_by(value: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    bad = [f for f in fields if f not in GROUP_FIELDS]
    if bad:
        raise UsageError(
            f"--group-by: unknown field(s) {', '.join(bad)}; choose from {', '.join(GROUP_FIELDS)}"
        )
    return fields


_UNIT = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"}


def keep_options(f: Any) -> Any:
    """The --keep-* options."""
    for kind in reversed(BUCKETS):
        f = click.option(
            f"--keep-within-{kind}",
            metavar="DURATION",
            help=f"Keep the newest snapshot of each {_UNIT[kind]} within DURATION of the group's newest snapshot.",
        )(f)
    f = click.option(
        "--keep-within",
        metavar="DURATION",
        help="Keep every snapshot taken within DURATION of the group's newest.",
    )(f)
    f = click.option(
        "--keep-tag",
        "keep_tags",
        multiple=True,
        metavar="TAGS",
        help="Keep snapshots with these tags ('a,b': both).",
    )(f)
    for kind in reversed(BUCKETS):
        f = click.option(
            f"--keep-{kind}",
            type=click.IntRange(min=0),
            metavar="N",
            help=f"Keep the newest snapshot of each of the newest N {_UNIT[kind]}s that have one.",
        )(f)
    f = click.option(
        "--keep-last", type=click.IntRange(min=0), metavar="N", help="Keep the newest N snapshots."
    )(f)
    return f


def policy_from_options(opts: dict[str, Any]) -> Policy | None:
    """The command line's policy, or None when no --keep-* option was given."""
    counts = {k: opts.get(f"keep_{k}") for k in ("last", *BUCKETS)}
    withins = {k: opts.get(f"keep_within_{k}") for k in BUCKETS}
    given = (
        any(v is not None for v in counts.values())
        or any(v is not None for v in withins.values())
        or opts.get("keep_within") is not None
        or bool(opts.get("keep_tags"))
    )
    if not given:
        return None
    n = {k: int(v or 0) for k, v in counts.items()}
    w = {k: _duration(f"--keep-within-{k}", v) for k, v in withins.items()}
    return Policy(
        last=n["last"],
        hourly=n["hourly"],
        daily=n["daily"],
        weekly=n["weekly"],
        monthly=n["monthly"],
        yearly=n["yearly"],
        within=_duration("--keep-within", opts.get("keep_within")),
        within_hourly=w["hourly"],
        within_daily=w["daily"],
        within_weekly=w["weekly"],
        within_monthly=w["monthly"],
        within_yearly=w["yearly"],
        tags=tuple(opts.get("keep_tags") or ()),
    )


def render(result: ForgetResult) -> str:
    lines: list[str] = []
    for g in result.plan.groups:
        if g.key == IDS_KEY:
            lines.append("snapshots named by id:")
        else:
            lines.append(
                f"{g.label}: {g.policy.describe() if g.policy is not None else 'keep all'} ({g.why})"
            )
        for d in g.decisions:
            s = d.snapshot
            marks = (" (partial)" if s.partial else "") + (" (pinned)" if s.pinned else "")
            lines.append(f"  {s.short_id}  {s.time[:19]}{marks}  {d.verdict}")
    for line in result.plan.damaged:
        lines.append(f"damaged, left alone: {line}")
    n = len(result.plan.remove)
    if result.dry_run:
        lines.append(f"would remove {n} snapshot(s), keep {len(result.plan.keep)} (dry run: nothing removed)")
    else:
        lines.append(f"removed {len(result.removed)} snapshot(s), kept {len(result.plan.keep)}")
    return "\n".join(lines)


@click.command("forget")
@click.argument("snapshot_ids", nargs=-1, metavar="[ID]...")
@keep_options
@click.option(
    "--group-by",
    default="host,profile",
    show_default=True,
    help=f"Group snapshots by these fields ({', '.join(GROUP_FIELDS)}; '' for one group); each group is "
    "kept by the policy on its own.",
)
@click.option("--host", "hosts", multiple=True, help="Only snapshots of this host (repeatable).")
@click.option("--profile", "profiles", multiple=True, help="Only snapshots of this profile (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only snapshots with this tag (repeatable: all of them).")
@click.option("-n", "--dry-run", is_flag=True, help="Show the plan; remove nothing.")
@click.option("--prune", "then_prune", is_flag=True, help="Then run 'safehold prune' to free the space.")
@prune_options
@pass_app
def forget_cmd(
    app: App,
    /,
    snapshot_ids: tuple[str, ...],
    group_by: str,
    hosts: tuple[str, ...],
    profiles: tuple[str, ...],
    tags: tuple[str, ...],
    dry_run: bool,
    then_prune: bool,
    **keep: Any,
) -> None:
    """Forget snapshots by a retention policy (or the ones named by ID): remove their snapshot files.

    Without --keep-* options the configuration's retention applies: each profile's 'retention' to its own
    snapshots. Snapshots are grouped by host and profile; in each group a snapshot is kept when any rule
    keeps it (restic's rules: --keep-daily 7 keeps the newest snapshot of each of the 7 newest days that
    have one; days, weeks (ISO) and months are those of the zone the snapshot recorded). The newest complete
    snapshot of each group and pinned snapshots are always kept; partial snapshots never count as kept
    good ones; safety snapshots (tag 'safety') follow defaults.safety_retention (30 days). The data of
    forgotten snapshots stays until 'safehold prune'.
    """
    prune_params = {k: keep.pop(k) for k in ("pack_grace", "max_repack_size", "max_unused")}
    prune_opts = options_from(prune_params, dry_run) if then_prune else None
    policy = policy_from_options(keep)
    if snapshot_ids and (policy is not None or hosts or profiles or tags):
        raise UsageError("give snapshot IDs or a policy with filters, not both")
    repo = app.open_repo()
    config = None if snapshot_ids else app.config()  # also with --keep-*: its safety_retention
    result = forget(
        repo,
        policy=policy,
        config=config,
        selection=Selection(group_by=_group_by(group_by), hosts=hosts, profiles=profiles, tags=tags),
        ids=snapshot_ids,
        dry_run=dry_run,
    )
    for line in result.plan.damaged:
        app.warn(f"warning: damaged snapshot file left alone: {line}")
    if prune_opts is None:
        app.emit(result.as_dict(), render(result))
        return
    if not app.json:
        app.emit(None, render(result))
    if dry_run:  # the prune plan as it will be once the forget has happened
        prune_opts.without = frozenset(s.id for s in result.plan.remove)
    outcome = prune(repo, prune_opts, app.progress())
    app.emit(result.as_dict() | {"prune": outcome.as_dict()}, "prune:\n" + render_prune(outcome))


def _pin(app: App, snapshot: str, pinned: bool) -> None:
    repo = app.open_repo()
    old, new = set_pinned(repo, snapshot, pinned)
    word = "pinned" if pinned else "unpinned"
    if new is None:
        app.emit(
            {"id": old.id, "pinned": pinned, "changed": False}, f"snapshot {old.short_id} is already {word}"
        )
        return
    app.emit(
        {"id": new.id, "previous_id": old.id, "pinned": pinned, "changed": True},
        f"snapshot {old.short_id} {word} (stored again as {new.short_id}; {old.short_id} still names it)",
    )


@click.command("pin")
@click.argument("snapshot")
@pass_app
def pin_cmd(app: App, snapshot: str) -> None:
    """Protect SNAPSHOT from every retention policy ('forget' keeps it until 'unpin')."""
    _pin(app, snapshot, True)


@click.command("unpin")
@click.argument("snapshot")
@pass_app
def unpin_cmd(app: App, snapshot: str) -> None:
    """Let retention policies decide about SNAPSHOT again."""
    _pin(app, snapshot, False)


COMMANDS = [forget_cmd, pin_cmd, unpin_cmd]
