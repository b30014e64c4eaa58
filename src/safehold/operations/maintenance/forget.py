"""``forget``, ``pin`` and ``unpin``: which snapshots a repository keeps.

Plan, then execute: :func:`plan_forget` groups the snapshots (by host and profile unless told otherwise),
chooses each group's policy and decides for every snapshot (:mod:`safehold.engine.prune.retention`);
:func:`execute_forget` removes the forgotten snapshot files under an exclusive lock, checking the lock
before each removal. Forgetting removes only snapshot files; the data they alone referenced stays until
``prune``.

Which policy a group gets:

* a policy given on the command line applies to every group of regular snapshots;
* otherwise each profile's ``retention`` from the configuration; a group whose profile has none (or
  snapshots made without a profile) keeps everything, and the plan says so;
* safety snapshots (tag ``safety``, taken before a restore replaces something) are grouped apart and
  always follow ``defaults.safety_retention`` (30 days unless configured): they never use up a profile's
  daily or weekly snapshots, and a policy given for regular backups does not sweep them away.

Damaged snapshot files are reported and left alone: forget never removes what it cannot read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from safehold.backends.base import FileType, Handle
from safehold.engine.format.lock import Lock
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.prune.retention import Decision, Policy, apply_policy, group_key
from safehold.errors import NotFound, NotFoundError, UsageError

if TYPE_CHECKING:
    from safehold.config.schema import Config
    from safehold.config.tables import Retention

SAFETY_TAG = "safety"
#: The key of the one group of a plan that forgets snapshots named by id.
IDS_KEY: tuple[tuple[str, str], ...] = (("ids", "given"),)
#: The safety snapshots' policy when no configuration says otherwise.
DEFAULT_SAFETY = Policy(within=timedelta(days=30))


def policy_of(r: Retention) -> Policy:
    """The engine's policy for a configuration's ``retention`` table."""
    from safehold.config.duration import parse_duration

    def span(v: str | None) -> timedelta | None:
        return parse_duration(v) if v else None

    return Policy(
        last=r.last or 0,
        hourly=r.hourly or 0,
        daily=r.daily or 0,
        weekly=r.weekly or 0,
        monthly=r.monthly or 0,
        yearly=r.yearly or 0,
        within=span(r.within),
        within_hourly=span(r.within_hourly),
        within_daily=span(r.within_daily),
        within_weekly=span(r.within_weekly),
        within_monthly=span(r.within_monthly),
        within_yearly=span(r.within_yearly),
        tags=tuple(r.tags),
    )


@dataclass
class GroupPlan:
    """One group of snapshots: its key, the policy it gets (None: keep all, with ``why``), the verdicts."""

    key: tuple[tuple[str, str], ...]
    policy: Policy | None
    why: str
    decisions: list[Decision]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v or '-'}" for k, v in self.key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": dict(self.key),
            "policy": self.policy.describe() if self.policy is not None else None,
            "why": self.why,
            "snapshots": [
                {
                    "id": d.snapshot.id,
                    "short_id": d.snapshot.short_id,
                    "time": d.snapshot.time,
                    "keep": d.keep,
                    "reasons": d.reasons,
                    "verdict": d.verdict,
                    "partial": d.snapshot.partial,
                    "pinned": d.snapshot.pinned,
                }
                for d in self.decisions
            ],
        }


@dataclass
class ForgetPlan:
    groups: list[GroupPlan] = field(default_factory=list)
    #: snapshot files that could not be read: reported, never removed
    damaged: list[str] = field(default_factory=list)

    @property
    def remove(self) -> list[Snapshot]:
        return [d.snapshot for g in self.groups for d in g.decisions if not d.keep]

    @property
    def keep(self) -> list[Snapshot]:
        return [d.snapshot for g in self.groups for d in g.decisions if d.keep]

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.as_dict() for g in self.groups],
            "damaged": self.damaged,
            "remove": [s.id for s in self.remove],
            "keep": len(self.keep),
        }


@dataclass
class Selection:
    """Which snapshots forget looks at, and how it groups them."""

    group_by: Sequence[str] = ("host", "profile")
    hosts: Sequence[str] = ()
    profiles: Sequence[str] = ()
    tags: Sequence[str] = ()

    def accepts(self, s: Snapshot) -> bool:
        return (
            (not self.hosts or s.hostname in self.hosts)
            and (not self.profiles or (s.profile or "") in self.profiles)
            and all(t in s.tags for t in self.tags)
        )


def plan_forget(
    snaps: Sequence[Snapshot],
    *,
    policy: Policy | None,
    config: Config | None,
    selection: Selection | None = None,
    damaged: Sequence[str] = (),
) -> ForgetPlan:
    """Decide for every selected snapshot. ``policy`` (from the command line) wins over the configuration;
    with neither, a :class:`UsageError` (forget would not know what to keep)."""
    sel = selection or Selection()
    if policy is not None and policy.empty:
        raise UsageError(
            "the policy keeps nothing by any rule",
            hint="Give a rule such as --keep-daily 7 or --keep-last 3, or name snapshots to forget by id.",
        )
    if policy is None and config is None:
        raise UsageError(
            "no retention policy: give --keep-* options, or a configuration whose profiles have 'retention'",
            hint="For example: safehold forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12.",
        )
    safety = DEFAULT_SAFETY
    if config is not None:
        safety = policy_of(config.defaults.safety_retention)
        if safety.empty:
            safety = DEFAULT_SAFETY
    groups: dict[tuple[tuple[str, str], ...], list[Snapshot]] = {}
    for s in snaps:
        if not sel.accepts(s):
            continue
        key = group_key(s, sel.group_by)
        if SAFETY_TAG in s.tags:
            key = (*key, ("kind", SAFETY_TAG))
        groups.setdefault(key, []).append(s)
    plan = ForgetPlan(damaged=list(damaged))
    for key, members in sorted(groups.items()):
        chosen, why = _choose(key, members, policy, config, safety)
        if chosen is None:
            decisions = [
                Decision(s, True, [why])
                for s in sorted(members, key=lambda s: (s.datetime, s.id), reverse=True)
            ]
        else:
            decisions = apply_policy(members, chosen)
        plan.groups.append(GroupPlan(key, chosen, why, decisions))
    return plan


def _choose(
    key: tuple[tuple[str, str], ...],
    members: list[Snapshot],
    policy: Policy | None,
    config: Config | None,
    safety: Policy,
) -> tuple[Policy | None, str]:
    if ("kind", SAFETY_TAG) in key:
        return safety, "safety snapshots (defaults.safety_retention)"
    if policy is not None:
        return policy, "the command line's policy"
    if config is None:
        raise UsageError("no retention policy")  # plan_forget refuses this case first
    profiles = {s.profile for s in members}
    if len(profiles) != 1 or None in profiles:
        return None, "no retention applies: snapshots without a single profile are kept (use --keep-*)"
    name = profiles.pop()
    assert name is not None
    prof = config.profiles.get(name)
    if prof is None:
        return None, f"no retention applies: profile {name!r} is not in the configuration"
    if prof.retention is None:
        return None, f"no retention applies: profile {name!r} has none (keep all)"
    chosen = policy_of(prof.retention)
    if chosen.empty:
        return None, f"no retention applies: profile {name!r}'s retention is empty (keep all)"
    return chosen, f"profile {name}'s retention"


def plan_ids(snaps: Sequence[Snapshot], ids: Sequence[str]) -> ForgetPlan:
    """A plan that forgets exactly the snapshots ``ids`` (full ids or unique prefixes of 4+ characters).

    A pinned snapshot is refused (unpin it first); an unknown or ambiguous id is an error: nothing is
    removed unless every id is understood."""
    chosen: dict[str, Snapshot] = {}
    for ref in ids:
        found = [
            s for s in snaps if len(ref) >= 4 and (s.id.startswith(ref) or (s.original or "").startswith(ref))
        ]
        if not found:
            raise NotFound(f"no snapshot {ref!r} in the repository")
        if len({s.id for s in found}) > 1:
            raise NotFound(f"snapshot id prefix {ref!r} is ambiguous", hint="Give more characters of the id.")
        s = found[0]
        if s.pinned:
            raise UsageError(
                f"snapshot {s.short_id} is pinned",
                hint=f"Run 'safehold unpin {s.short_id}' first to forget it.",
            )
        chosen[s.id] = s
    decisions = [Decision(s, False, []) for s in chosen.values()]
    return ForgetPlan(groups=[GroupPlan(IDS_KEY, None, "named on the command line", decisions)])


@dataclass
class ForgetResult:
    plan: ForgetPlan
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return self.plan.as_dict() | {"removed": self.removed, "dry_run": self.dry_run}


def execute_forget(repo: Repository, plan: ForgetPlan, lock: Lock) -> list[str]:
    """Remove the forgotten snapshot files; the lock is checked before each. Returns the removed ids."""
    removed: list[str] = []
    for s in plan.remove:
        lock.check()
        try:
            repo.backend.remove(Handle(FileType.SNAPSHOT, s.id))
        except NotFoundError:
            pass  # already gone (another forget): the outcome is the same
        removed.append(s.id)
    return removed


def load_snapshots(repo: Repository) -> tuple[list[Snapshot], list[str]]:
    """Every readable snapshot, and a line for each damaged one."""
    damaged: list[str] = []
    snaps = list(repo.iter_snapshots(errors=damaged))
    return snaps, damaged


def forget(
    repo: Repository,
    *,
    policy: Policy | None,
    config: Config | None,
    selection: Selection | None = None,
    ids: Sequence[str] = (),
    dry_run: bool = False,
) -> ForgetResult:
    """Plan and (unless ``dry_run``) execute under an exclusive lock (waiting ``repo.lock_wait``)."""
    lock = None if dry_run else repo.lock(exclusive=True, operation="forget")
    try:
        snaps, damaged = load_snapshots(repo)
        if ids:
            plan = plan_ids(snaps, ids)
            plan.damaged = damaged
        else:
            plan = plan_forget(snaps, policy=policy, config=config, selection=selection, damaged=damaged)
        result = ForgetResult(plan, dry_run=dry_run)
        if lock is not None:
            result.removed = execute_forget(repo, plan, lock)
        return result
    finally:
        if lock is not None:
            lock.release()


def set_pinned(repo: Repository, ref: str, pinned: bool) -> tuple[Snapshot, Snapshot | None]:
    """Pin or unpin the snapshot ``ref``: write it again with the mark changed (its first id kept in
    ``original``, so the id a backup printed still names it), then remove the old file. Returns ``(the
    snapshot as it was, the new one or None when it was already so)``."""
    lock = repo.lock(exclusive=True, operation="pin" if pinned else "unpin")
    try:
        snap = repo.find_snapshot(ref)
        if snap.pinned == pinned:
            return snap, None
        new = dataclasses.replace(snap, pinned=pinned, original=snap.original or snap.id, id="", written=None)
        lock.confirm()
        repo.save_snapshot(new)
        if new.id != snap.id:
            lock.check()
            try:
                repo.backend.remove(Handle(FileType.SNAPSHOT, snap.id))
            except NotFoundError:
                pass
        return snap, new
    finally:
        lock.release()
