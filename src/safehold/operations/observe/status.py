"""Status: is the data safe *now*? The newest complete snapshot of each host and profile against the RPO,
the newest drill against the RTO, the last check, the repository's size and growth, stale locks.

:func:`compute_status` is a pure function of the repository's listings, the recorded results
(:mod:`safehold.operations.observe.results`), the configuration and a clock (``now``), so that tests inject the
time and other operations (notifications, the Prometheus textfile, the HTML report) reuse the same figures.
It returns a :class:`Status`; :attr:`Status.breached` lists the objectives that are not met.

Which objectives apply (the README says the same):

* **RPO**, per profile and host: the profile's own ``rpo``, else ``objectives.rpo`` for the default
  profile (for every profile when there is no default; for snapshots of plain paths when there are no
  profiles). Measured for the hosts asked for (default: this host). No complete snapshot is a breach.
* **RTO**, for the drill profile (``drill.profile``, else the default profile) and each host asked for:
  the newest drill of that host's snapshots must have passed, within ``objectives.rto``, and be no older
  than ``objectives.drill_age`` (default from ``drill.schedule``). No drill at all is a breach.
* **check**: when a check was recorded, the newest one must have passed (no objective before the first).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from safehold.backends.base import FileType
from safehold.config.duration import parse_duration
from safehold.config.schema import Config
from safehold.engine.format.crypto import SessionCache
from safehold.engine.format.lock import read_locks
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.operations.observe import results as results_mod
from safehold.operations.observe.results import Result

#: Days between drills that each ``drill.schedule`` keyword allows (a calendar expression: monthly).
_SCHEDULE_DAYS = {"hourly": 1, "daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92, "semiannually": 183,
                  "yearly": 366, "annually": 366}  # fmt: skip
#: Slack on top of the schedule: a drill that runs a few hours late is not overdue.
_SLACK = dt.timedelta(days=1)
GROWTH_DAYS = 30


@dataclass
class SnapshotRef:
    id: str
    time: str
    age_seconds: float


@dataclass
class ProfileStatus:
    """The snapshots of one host and profile (``profile`` None: snapshots of plain paths)."""

    host: str
    profile: str | None
    snapshots: int
    newest_complete: SnapshotRef | None
    #: partial snapshots newer than the newest complete one (the failures nobody fixed yet)
    partial_since: list[SnapshotRef]
    rpo_seconds: float | None
    rpo_ok: bool | None


@dataclass
class DrillStatus:
    host: str
    profile: str | None
    last: dict[str, Any] | None  # the recorded Result
    age_seconds: float | None
    rto_seconds: float | None
    max_age_seconds: float
    ok: bool


@dataclass
class Objective:
    """One objective measured: ``value`` and ``limit`` in seconds where they are durations."""

    name: str  # rpo | rto | check
    host: str | None
    profile: str | None
    ok: bool
    message: str
    value: float | None = None
    limit: float | None = None


@dataclass
class RepositoryFigures:
    size_bytes: int
    data_bytes: int
    files: int
    snapshots: int
    #: bytes the snapshots hold (sum of each snapshot's files) per byte stored in data packs
    logical_bytes: int
    dedup_ratio: float | None
    #: bytes the backups of the last 30 days added to the repository (stored, compressed)
    added_30d_bytes: int
    added_30d_backups: int


@dataclass
class Status:
    time: str
    hosts: list[str]
    profiles: list[ProfileStatus]
    drills: list[DrillStatus]
    last_check: dict[str, Any] | None
    repository: RepositoryFigures
    stale_locks: list[dict[str, Any]]
    objectives: list[Objective]
    warnings: list[str] = field(default_factory=list)
    #: notification targets whose last delivery failed (this host's record; the CLI fills it in)
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breached(self) -> list[Objective]:
        return [o for o in self.objectives if not o.ok]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = not self.breached
        return d


def _seconds(duration: str | None) -> float | None:
    return parse_duration(duration).total_seconds() if duration else None


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``1h 2m``; ``None`` -> ``-``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {sec}s" if sec else f"{m}m"


def drill_max_age(config: Config) -> float:
    """Seconds the newest drill may be old: objectives.drill_age, else drill.schedule plus a day."""
    if config.objectives.drill_age:
        return parse_duration(config.objectives.drill_age).total_seconds()
    word = re.sub(r"[^a-z]", "", config.drill.schedule.lower())
    days = _SCHEDULE_DAYS.get(word, 31)
    return (dt.timedelta(days=days) + _SLACK).total_seconds()


def profile_rpo(config: Config, profile: str | None) -> float | None:
    """The RPO (seconds) that applies to ``profile``'s snapshots (see the module docstring)."""
    if profile is not None and profile in config.profiles and config.profiles[profile].rpo:
        return _seconds(config.profiles[profile].rpo)
    default = config.defaults.profile
    if profile is None:
        return _seconds(config.objectives.rpo) if not config.profiles else None
    if default is None or profile == default:
        return _seconds(config.objectives.rpo)
    return None


def drill_profile(config: Config) -> str | None:
    return config.drill.profile or config.defaults.profile


def _counted(s: Snapshot) -> bool:
    """Snapshots that count as backups (not the safety snapshots restores take)."""
    return "safety" not in s.tags


def _groups(snaps: list[Snapshot]) -> dict[tuple[str, str | None], list[Snapshot]]:
    out: dict[tuple[str, str | None], list[Snapshot]] = {}
    for s in snaps:
        out.setdefault((s.hostname, s.profile), []).append(s)
    for group in out.values():
        group.sort(key=lambda s: (s.datetime, s.id))
    return out


def _ref(s: Snapshot, now: dt.datetime) -> SnapshotRef:
    return SnapshotRef(s.id, s.time, round((now - s.datetime).total_seconds(), 1))


def _profile_status(
    host: str, profile: str | None, snaps: list[Snapshot], config: Config, now: dt.datetime
) -> ProfileStatus:
    current = [s for s in snaps if s.ahead(now) is None]
    complete = [s for s in current if not s.partial]
    newest = complete[-1] if complete else None
    since = [s for s in current if s.partial and (newest is None or s.datetime > newest.datetime)]
    rpo = profile_rpo(config, profile)
    ref = _ref(newest, now) if newest else None
    ok = None if rpo is None else (ref is not None and ref.age_seconds <= rpo)
    return ProfileStatus(host, profile, len(snaps), ref, [_ref(s, now) for s in since], rpo, ok)


def _rpo_objective(p: ProfileStatus) -> Objective:
    limit = p.rpo_seconds
    assert limit is not None
    if p.newest_complete is None:
        msg = f"no complete snapshot (RPO {human_duration(limit)})"
        return Objective("rpo", p.host, p.profile, False, msg, None, limit)
    age = p.newest_complete.age_seconds
    ok = age <= limit
    msg = (
        f"newest complete snapshot {p.newest_complete.id[:8]} is {human_duration(age)} old "
        f"({'within' if ok else 'beyond'} the RPO of {human_duration(limit)})"
    )
    if p.partial_since:
        msg += f"; {len(p.partial_since)} partial snapshot(s) since"
    return Objective("rpo", p.host, p.profile, ok, msg, age, limit)


def _drill_status(
    host: str, profile: str | None, found: list[Result], config: Config, now: dt.datetime
) -> tuple[DrillStatus, Objective]:
    rto = _seconds(config.objectives.rto)
    max_age = drill_max_age(config)
    last = results_mod.newest(found, "drill", snapshot_host=host, profile=profile)
    if last is None:
        msg = "no drill recorded: the RTO is unproven (run 'safehold drill')"
        return DrillStatus(host, profile, None, None, rto, max_age, False), Objective(
            "rto", host, profile, False, msg, None, rto
        )
    age = round((now - last.started).total_seconds(), 1)
    problems = []
    if not last.ok:
        problems.append(f"the last drill failed ({last.message or 'see its components'})")
    if rto is not None and last.seconds > rto:
        problems.append(
            f"the last drill took {human_duration(last.seconds)}, beyond the RTO of {human_duration(rto)}"
        )
    if age > max_age:
        problems.append(f"the last drill is {human_duration(age)} old (due every {human_duration(max_age)})")
    ok = not problems
    msg = "; ".join(problems) or (
        f"last drill passed {human_duration(age)} ago in {human_duration(last.seconds)}"
        + (f" (RTO {human_duration(rto)})" if rto is not None else "")
    )
    status = DrillStatus(host, profile, last.as_dict(), age, rto, max_age, ok)
    return status, Objective("rto", host, profile, ok, msg, last.seconds, rto)


def _figures(repo: Repository, snaps: list[Snapshot], now: dt.datetime) -> RepositoryFigures:
    size = data = files = 0
    for t in FileType:
        if t is FileType.BOOTSTRAP:
            continue
        for fi in repo.backend.list(t):
            files += 1
            size += fi.size
            if t is FileType.DATA:
                data += fi.size
    logical = sum(int(s.summary.get("bytes_total", 0) or 0) for s in snaps)
    since = now - dt.timedelta(days=GROWTH_DAYS)
    recent = [s for s in snaps if s.datetime >= since]
    added = sum(int(s.summary.get("added_bytes_new_stored", 0) or 0) for s in recent)
    ratio = round(logical / data, 2) if data else None
    return RepositoryFigures(size, data, files, len(snaps), logical, ratio, added, len(recent))


def compute_status(
    repo: Repository,
    config: Config,
    *,
    now: dt.datetime | None = None,
    hosts: list[str] | None = None,
    results: list[Result] | None = None,
) -> Status:
    """The status of ``repo`` measured against ``config``'s objectives at ``now`` (default: the clock),
    for ``hosts`` (default: every host that has snapshots of a profile with an objective... see the module
    docstring; callers pass this host)."""
    now = now or dt.datetime.now(dt.UTC)
    warnings: list[str] = []
    snaps = [s for s in repo.iter_snapshots(errors=warnings) if _counted(s)]
    found = results if results is not None else results_mod.load(repo, warnings.append)
    groups = _groups(snaps)
    wanted = hosts if hosts is not None else sorted({h for h, _ in groups})
    profiles: list[ProfileStatus] = []
    objectives: list[Objective] = []
    names: list[str | None] = list(config.profiles) or [None]
    for host in sorted({h for h, _ in groups} | set(wanted)):
        seen = {p for h, p in groups if h == host}
        for profile in [*names, *sorted((p for p in seen if p not in names), key=str)]:
            if profile not in seen and (host not in wanted or profile_rpo(config, profile) is None):
                continue
            p = _profile_status(host, profile, groups.get((host, profile), []), config, now)
            profiles.append(p)
            if host in wanted and p.rpo_seconds is not None:
                objectives.append(_rpo_objective(p))
    drills: list[DrillStatus] = []
    if config.objectives.rto is not None:
        for host in wanted:
            d, o = _drill_status(host, drill_profile(config), found, config, now)
            drills.append(d)
            objectives.append(o)
    check = results_mod.newest(found, "check")
    if check is not None:
        age = (now - check.started).total_seconds()
        msg = f"last check {'passed' if check.ok else 'FAILED'} {human_duration(age)} ago" + (
            f": {check.message}" if check.message else ""
        )
        objectives.append(Objective("check", None, None, check.ok, msg, age, None))
    locks = [
        info.to_json()
        for info in read_locks(repo.backend, repo.keys.lock, SessionCache(repo.keys.lock))
        if info.stale()
    ]
    return Status(
        time=now.isoformat(timespec="seconds"),
        hosts=wanted,
        profiles=profiles,
        drills=drills,
        last_check=check.as_dict() if check else None,
        repository=_figures(repo, snaps, now),
        stale_locks=locks,
        objectives=objectives,
        warnings=warnings,
    )
