"""What ``--snapshot latest`` means for a component restore, and why.

For named components, ``latest`` is the newest snapshot in which every named component *completed*: a
partial snapshot where the component failed, or a snapshot of another profile that does not hold it (a
newer ``external`` profile run when restoring ``database``), is skipped, and the choice says which
newer snapshots were skipped and why. For ``all`` it is the newest component snapshot; components that
failed in it are named with the newest snapshot where they completed, so the operator can restore them
from there. Safety snapshots (tag ``safety``) and snapshots dated in the future never count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot, newest
from safehold.errors import NotFound

#: How many skipped newer snapshots a choice names (the rest are counted).
SHOWN = 5


@dataclass
class LatestChoice:
    snapshot: Snapshot
    #: One sentence: which snapshot 'latest' resolved to and why.
    reason: str
    #: Newer component snapshots that were not taken, each "ID (why)".
    skipped: list[str] = field(default_factory=list)
    #: Components that failed in the chosen snapshot: name -> newest snapshot id where it completed (or None).
    elsewhere: dict[str, str | None] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [self.reason]
        if self.skipped:
            more = len(self.skipped) - SHOWN
            out.append(
                "  newer snapshots skipped: "
                + ", ".join(self.skipped[:SHOWN])
                + (f" and {more} more" if more > 0 else "")
            )
        for name, sid in self.elsewhere.items():
            out.append(
                f"  component {name} failed in this snapshot and is not restored; "
                + (
                    f"its newest complete copy is in {sid[:8]}: safehold restore {name} --snapshot {sid[:8]}"
                    if sid
                    else "no snapshot holds a complete copy"
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot.id,
            "reason": self.reason,
            "skipped": self.skipped,
            "failed_here": self.elsewhere,
        }


def completed(snap: Snapshot, name: str) -> bool:
    """Whether component ``name`` completed (status ok) in ``snap``."""
    c = snap.components.get(name)
    return isinstance(c, dict) and c.get("status") == "ok"


def failed_components(snap: Snapshot) -> list[str]:
    """The components that failed in ``snap`` (sorted)."""
    return sorted(
        n for n, c in snap.components.items() if not (isinstance(c, dict) and c.get("status") == "ok")
    )


def newest_completed(repo: Repository, name: str, *, now: datetime | None = None) -> Snapshot | None:
    """The newest snapshot (not dated in the future, not a safety snapshot) in which ``name`` completed."""
    best, _future = newest(
        repo.iter_snapshots(), lambda s: _component_snapshot(s) and completed(s, name), now=now
    )
    return best


def _component_snapshot(s: Snapshot) -> bool:
    return bool(s.components) and "safety" not in s.tags


def _why_not(s: Snapshot, names: list[str]) -> str:
    failed = [n for n in names if n in s.components and not completed(s, n)]
    missing = [n for n in names if n not in s.components]
    parts = []
    if failed:
        parts.append(f"{', '.join(failed)} failed")
    if missing:
        prof = f"profile {s.profile}" if s.profile else "a snapshot"
        parts.append(f"{prof} without {', '.join(missing)}")
    return f"{s.short_id} ({'; '.join(parts)})"


def choose_latest(repo: Repository, components: list[str], *, now: datetime | None = None) -> LatestChoice:
    """Resolve ``latest`` for a restore of ``components`` (``["all"]`` for everything); see the module
    docstring. Raises NotFound naming, per component, where it last completed when no snapshot fits."""
    now = now or datetime.now(UTC)
    seen: list[Snapshot] = []
    everything = components == ["all"]

    def accept(s: Snapshot) -> bool:
        if not _component_snapshot(s):
            return False
        seen.append(s)
        return everything or all(completed(s, n) for n in components)

    def newest_with(name: str) -> Snapshot | None:
        ok = [s for s in seen if completed(s, name) and s.ahead(now) is None]
        return max(ok, key=lambda s: (s.datetime, s.id), default=None)

    none = NotFound("no snapshot fits")
    try:
        snap = repo.latest(accept, none=none, now=now)
    except NotFound as exc:
        if exc is not none:
            raise  # only snapshots dated in the future fit: repo.latest's message names them
        if everything or not seen:
            raise NotFound(
                "the repository has no component snapshots",
                hint="Run 'safehold backup --profile P' first, or use 'restore SNAPSHOT --target DIR'.",
            ) from exc
        where = []
        for n in components:
            s = newest_with(n)
            where.append(f"{n}: {s.short_id}" if s else f"{n}: none")
        raise NotFound(
            f"no snapshot holds a complete copy of every one of {', '.join(components)} "
            f"(newest complete copy of each: {'; '.join(where)})",
            hint="Restore the components one at a time (each from its own latest), or name a snapshot "
            "with --snapshot.",
        ) from None
    key = (snap.datetime, snap.id)
    newer = sorted(
        (s for s in seen if (s.datetime, s.id) > key and s.ahead(now) is None),
        key=lambda s: (s.datetime, s.id),
        reverse=True,
    )
    if everything:
        reason = f"'latest' is {snap.short_id}, the newest component snapshot"
        elsewhere: dict[str, str | None] = {}
        for name in failed_components(snap):
            other = newest_with(name)
            elsewhere[name] = other.id if other else None
        return LatestChoice(snap, reason + _profile(snap), [], elsewhere)
    what = "in which " + (
        f"{components[0]} completed" if len(components) == 1 else f"{', '.join(components)} all completed"
    )
    reason = f"'latest' is {snap.short_id}, the newest snapshot {what}" + _profile(snap)
    return LatestChoice(snap, reason, [_why_not(s, components) for s in newer])


def _profile(s: Snapshot) -> str:
    return f" (profile {s.profile}, {s.time[:19]})" if s.profile else f" ({s.time[:19]})"
