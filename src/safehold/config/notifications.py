"""The ``[notifications]`` table: who hears about what, and the catalogue of events.

An *event* has a kind (``backup.failure``, ``rpo.breach``...) and a class (``failure``, ``partial``,
``breach``, ``warning``, ``success``, ``start``). A target's ``on`` list names classes, kinds, or ``all``;
an event is sent to a target when its class or its kind is in that list. The default is every failure,
every partial backup, every breach and every warning (low disk, a lock held too long); successes and
starts only when asked for.

Targets are apprise URLs. A URL embeds tokens or passwords, so it is always a secret reference (a file,
an environment variable or a command that prints it), never written into the configuration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from safehold.config.validation import Duration, StrictModel, named_entries
from safehold.secrets import SecretRef

#: Every event kind: its class and what it means (the README's list is generated from this).
EVENT_KINDS: dict[str, tuple[str, str]] = {
    "backup.start": ("start", "a backup started"),
    "backup.success": ("success", "a backup completed: every component is in the snapshot"),
    "backup.partial": ("partial", "a snapshot was written but some items or components are missing"),
    "backup.failure": ("failure", "a backup failed: no snapshot, or its hooks or off-site copies failed"),
    "check.success": ("success", "a repository check found no problem"),
    "check.failure": ("failure", "a repository check found damage or could not run"),
    "drill.success": ("success", "a restore drill passed"),
    "drill.failure": ("failure", "a restore drill failed"),
    "prune.success": ("success", "forget/prune completed"),
    "prune.failure": ("failure", "forget/prune failed"),
    "rpo.breach": (
        "breach",
        "the newest complete snapshot is older than the recovery point objective (found after a backup, "
        "check, drill, forget, prune or status run; sent once when the breach starts)",
    ),
    "rto.breach": (
        "breach",
        "the newest restore drill failed, is missing or overdue, or took longer than the recovery time "
        "objective (found after a backup, check, drill, forget, prune or status run; sent once when the "
        "breach starts)",
    ),
    "disk.low": (
        "warning",
        "the backup's preflight found a repository, cache or temporary folder that would be fuller than "
        "[preflight] warn_usage, or that cannot take the backup (sent once when that starts)",
    ),
    "lock.held": (
        "warning",
        "another operation's repository lock stopped a command: held longer than lock_held_after, or "
        "waited for in vain (--lock-wait)",
    ),
    "guard.failure": (
        "failure",
        "'safehold guard' did not run its command: the backup before it failed or is partial",
    ),
    "test": ("test", "'safehold notify test' (always sent, whatever the filter)"),
}
EVENT_CLASSES = ("start", "success", "partial", "failure", "breach", "warning")

#: A value of an ``on`` list: a class, an event kind, or ``all``.
On = Literal[
    "all",
    "start",
    "success",
    "partial",
    "failure",
    "breach",
    "warning",
    "backup.start",
    "backup.success",
    "backup.partial",
    "backup.failure",
    "check.success",
    "check.failure",
    "drill.success",
    "drill.failure",
    "prune.success",
    "prune.failure",
    "rpo.breach",
    "rto.breach",
    "disk.low",
    "lock.held",
    "guard.failure",
]

DEFAULT_ON: list[On] = ["failure", "partial", "breach", "warning"]


def wanted(on: list[str], kind: str) -> bool:
    """Whether an event of ``kind`` goes to a target listening ``on`` (``test`` always does)."""
    klass = EVENT_KINDS[kind][0]
    return kind == "test" or ("all" in on and klass != "start") or kind in on or klass in on


class Target(StrictModel):
    """A named notification target: an apprise URL (a secret reference) and the events it receives."""

    url: SecretRef = Field(
        description="The apprise URL (slack://, mailto://, discord://, tgram://, ntfy://, matrix://, "
        "json://, form://, ...) as a secret reference: URLs embed tokens and passwords.",
        examples=[{"env": "SLACK_WEBHOOK_URL"}],
    )
    on: list[On] | None = Field(
        default=None,
        description="Events this target receives (classes, event kinds or 'all'); absent: notifications.on.",
        examples=[["failure", "backup.success"]],
    )


class Notifications(StrictModel):
    """Who hears about backups, checks, drills and prunes, and the dead-man's-switch ping."""

    urls: list[SecretRef] = Field(
        default_factory=list,
        description="Apprise URLs (Slack, e-mail, Discord, Telegram, ntfy, Matrix, JSON webhooks, ...) as "
        "secret references, since they embed tokens; each receives the events of 'on'.",
        examples=[[{"env": "SLACK_WEBHOOK_URL"}]],
    )
    on: list[On] = Field(
        default_factory=lambda: list(DEFAULT_ON),
        description="Events sent to 'urls' (and to targets without their own 'on'): classes (start, "
        "success, partial, failure, breach, warning), event kinds (backup.success, check.failure, "
        "rpo.breach, disk.low, ...) or 'all' (everything but starts).",
        examples=[["failure", "partial", "breach", "warning", "backup.success"]],
    )
    targets: Annotated[dict[str, Target], named_entries("notification target")] = Field(
        default_factory=dict,
        description="Named targets with their own events ('safehold notify test NAME' tests one).",
        examples=[{"oncall": {"url": {"env": "PAGER_URL"}, "on": ["failure"]}}],
    )
    healthchecks_ping: SecretRef | None = Field(
        default=None,
        description="A healthchecks.io-style ping URL for backups: URL/start when one starts, URL on "
        "success, URL/fail (with the last lines of the log) on failure or a partial snapshot.",
        examples=[{"env": "HC_PING_URL"}],
    )
    timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a notification may take (all targets are sent at once); a failed or slow "
        "one is a warning and never fails or holds up the operation longer than this.",
        examples=[10],
    )
    lock_held_after: Duration = Field(
        default="1h",
        description="A command that finds the repository locked by another operation sends lock.held when "
        "that lock is older than this, or when it waited for it (--lock-wait) in vain.",
        examples=["1h"],
    )
    log_lines: int = Field(
        default=20,
        ge=0,
        le=500,
        description="How many of the last lines of the operation's log a message and a /fail ping carry.",
        examples=[20],
    )
