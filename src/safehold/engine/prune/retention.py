"""Retention: which snapshots of a group a policy keeps, and why.

The rules are restic's (``restic forget``), so that people who know one know the other:

* Snapshots are looked at newest first (ties in time broken by id, the larger first).
* ``last N`` keeps the newest N.
* A *bucket* rule (``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly`` N) keeps the newest snapshot
  of each of the newest N periods that hold a snapshot: going newest first, a snapshot whose period the
  rule has not kept yet is kept and uses up one of the N. So a snapshot counts for the newest bucket it is
  the newest of. Periods are calendar periods in the zone the snapshot recorded (its own UTC offset, not
  the reader's); weeks are ISO weeks (Monday to Sunday; the year of a week is its ISO year). (restic
  compares with the period of the last kept snapshot only; the two agree whenever a group's snapshots
  share a zone, and when a host changed zones a period is still counted once.)
* ``within D`` keeps every snapshot taken less than D before the newest snapshot of the group (the
  reference is the group's newest complete snapshot, not the clock: a host that stopped backing up does not
  lose its last backups one by one). ``within_daily D`` etc. apply the bucket rule to the snapshots within
  D of that reference, without a count.
* ``tags`` keeps every snapshot carrying all the tags of any one entry (``"a,b"`` means a and b).

safehold's guarantees on top of the rules, whatever the policy:

* The newest complete snapshot of each group is always kept.
* A partial snapshot (some items could not be read) never counts as one of the kept good ones: the rules
  skip it, so it does not use up a ``daily`` that a complete snapshot of that day would have taken. It is
  kept only while it is newer than the group's newest complete snapshot (then it is the best there is for
  the time after that one), and forgotten once a newer complete snapshot exists.
* A pinned snapshot (``safehold pin``) is always kept. It still counts for the rules it matches.

This module only decides; :mod:`safehold.operations.maintenance.forget` groups snapshots, chooses each group's policy
and removes what is forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from safehold.engine.format.snapshot import Snapshot

#: The bucket rules, oldest first in restic's order, and the period key of each.
BUCKETS: tuple[str, ...] = ("hourly", "daily", "weekly", "monthly", "yearly")


def period(kind: str, when: datetime) -> tuple[int, ...]:
    """The calendar period of ``kind`` holding ``when``, in ``when``'s own zone."""
    if kind == "hourly":
        return (when.year, when.month, when.day, when.hour)
    if kind == "daily":
        return (when.year, when.month, when.day)
    if kind == "weekly":
        iso = when.isocalendar()
        return (iso.year, iso.week)
    if kind == "monthly":
        return (when.year, when.month)
    if kind == "yearly":
        return (when.year,)
    raise ValueError(f"unknown retention period {kind!r}")


@dataclass(frozen=True)
class Policy:
    """What to keep. Counts of 0 and durations of None mean "this rule keeps nothing"."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: timedelta | None = None
    within_hourly: timedelta | None = None
    within_daily: timedelta | None = None
    within_weekly: timedelta | None = None
    within_monthly: timedelta | None = None
    within_yearly: timedelta | None = None
    tags: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in BUCKETS}

    def withins(self) -> dict[str, timedelta]:
        return {k: d for k in BUCKETS if (d := getattr(self, f"within_{k}")) is not None}

    @property
    def empty(self) -> bool:
        """True when no rule keeps anything (the policy alone would forget all but the guarantees)."""
        return not (self.last or any(self.counts().values()) or self.within or self.withins() or self.tags)

    def describe(self) -> str:
        parts = [f"last {self.last}"] if self.last else []
        parts += [f"{k} {n}" for k, n in self.counts().items() if n]
        if self.within:
            parts.append(f"within {_span(self.within)}")
        parts += [f"within-{k} {_span(d)}" for k, d in self.withins().items()]
        parts += [f"tag {t}" for t in self.tags]
        return ", ".join(parts) or "(no rule)"


def _span(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


@dataclass
class Decision:
    """The verdict on one snapshot: kept (with every reason) or forgotten."""

    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.keep:
            return "remove"
        return "keep: " + ", ".join(self.reasons)


def _order_key(s: Snapshot) -> tuple[datetime, str]:
    return (s.datetime, s.id)


def has_tags(snap: Snapshot, spec: str) -> bool:
    """True when ``snap`` carries every tag of ``spec`` (``"a,b"``)."""
    wanted = [t for t in spec.split(",") if t]
    return bool(wanted) and all(t in snap.tags for t in wanted)


def apply_policy(snaps: Sequence[Snapshot], policy: Policy) -> list[Decision]:
    """Decide for every snapshot of one group; the decisions come newest first."""
    order = sorted(snaps, key=_order_key, reverse=True)
    complete = [s for s in order if not s.partial]
    newest_complete = complete[0] if complete else None
    reference = (newest_complete or order[0]).datetime if order else None
    counts = policy.counts()
    seen: dict[str, set[tuple[int, ...]]] = {k: set() for k in BUCKETS}
    numbers = dict.fromkeys(BUCKETS, 0)
    withins = policy.withins()
    within_seen: dict[str, set[tuple[int, ...]]] = {k: set() for k in withins}
    within_numbers = dict.fromkeys(withins, 0)
    kept_last = 0
    out: list[Decision] = []
    for s in order:
        reasons: list[str] = []
        if s.pinned:
            reasons.append("pinned")
        if s is newest_complete:
            reasons.append("newest complete snapshot")
        if s.partial:
            if newest_complete is None or _order_key(s) > _order_key(newest_complete):
                reasons.append("partial, newer than every complete snapshot")
            out.append(Decision(s, bool(reasons), reasons))
            continue
        for spec in policy.tags:
            if has_tags(s, spec):
                reasons.append(f"tag {spec}")
        if kept_last < policy.last:
            kept_last += 1
            reasons.append(f"last #{kept_last}")
        when = s.datetime
        assert reference is not None
        if policy.within is not None and when > reference - policy.within:
            reasons.append(f"within {_span(policy.within)}")
        for kind in BUCKETS:
            if counts[kind] > 0:
                key = period(kind, when)
                if key not in seen[kind]:
                    seen[kind].add(key)
                    counts[kind] -= 1
                    numbers[kind] += 1
                    reasons.append(f"{kind} #{numbers[kind]}")
        for kind, span in withins.items():
            if when > reference - span:
                key = period(kind, when)
                if key not in within_seen[kind]:
                    within_seen[kind].add(key)
                    within_numbers[kind] += 1
                    reasons.append(f"within-{kind} #{within_numbers[kind]}")
        out.append(Decision(s, bool(reasons), reasons))
    return out


#: What snapshots may be grouped by (``--group-by``).
GROUP_FIELDS: tuple[str, ...] = ("host", "profile", "tags", "paths")


def group_key(snap: Snapshot, fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The group of ``snap``: ``((field, value), ...)`` for each of ``fields`` (:data:`GROUP_FIELDS`)."""
    values: dict[str, Callable[[Snapshot], str]] = {
        "host": lambda s: s.hostname,
        "profile": lambda s: s.profile or "",
        "tags": lambda s: ",".join(sorted(s.tags)),
        "paths": lambda s: ",".join(sorted(s.paths)),
    }
    return tuple((f, values[f](snap)) for f in fields)
