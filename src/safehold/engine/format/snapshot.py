"""Snapshots: the root record of one backup.

Encoded as canonical JSON (sorted keys) and stored encrypted in ``snapshots/<sha256>``; the file name is
the snapshot id. A snapshot names its root tree, what was backed up and from where, and carries the
per-component metadata later steps need (database statistics for restore drills, tool versions,
export counts) plus summary statistics. ``original`` is the id of the snapshot this one was copied
from (``safehold copy``), so copies are recognised in the target; ``safehold pin`` rewrites a snapshot
with ``pinned`` set and keeps its first id in ``original`` too, so the id a backup printed still names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from safehold.errors import IntegrityError

_DateTime = datetime  # for annotations inside Snapshot, whose property ``datetime`` shadows the name
SNAPSHOT_VERSION = 1
#: How far a snapshot's time may lie ahead of the reader's clock and still be ``latest``: more than the
#: clock skew of hosts that keep time with NTP, far less than any backup interval.
FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass
class Snapshot:
    time: str
    tree: str
    paths: list[str]
    hostname: str
    username: str = ""
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    program_version: str = ""
    partial: bool = False
    errors: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    components: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    original: str | None = None
    #: protected from every retention policy (``safehold pin``); stored only when set
    pinned: bool = False
    version: int = SNAPSHOT_VERSION
    id: str = field(default="", compare=False)
    #: when the storage says the file was written (seconds since the epoch), None when unknown
    written: float | None = field(default=None, compare=False)

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d.pop("id")
        d.pop("written")
        if not d["pinned"]:  # snapshots that were never pinned encode as before the field existed
            d.pop("pinned")
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, snap_id: str) -> Snapshot:
        try:
            d = json.loads(raw)
            if d.get("version") != SNAPSHOT_VERSION:
                raise IntegrityError(f"snapshot {snap_id[:8]} has an unknown version")
            known = set(cls.__dataclass_fields__) - {"id", "written"}
            s = cls(**{k: v for k, v in d.items() if k in known})
            if not isinstance(s.time, str):
                raise TypeError("its time is not a string")
            if not isinstance(s.pinned, bool) or not isinstance(s.partial, bool):
                raise TypeError("its pinned or partial mark is not true or false")
            if not isinstance(s.hostname, str) or not (s.profile is None or isinstance(s.profile, str)):
                raise TypeError("its host or profile is not a string")
            for what, items in (("tags", s.tags), ("paths", s.paths)):
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise TypeError(f"its {what} are not a list of strings")
            _ = s.datetime  # a time that does not parse is damage, not something to sort by
        except (ValueError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"snapshot {snap_id[:8]} is malformed: {exc}") from None
        s.id = snap_id
        return s

    @property
    def datetime(self) -> datetime:
        dt = datetime.fromisoformat(self.time)
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def written_datetime(self) -> _DateTime | None:
        return None if self.written is None else datetime.fromtimestamp(self.written, UTC)

    def ahead(self, now: _DateTime) -> timedelta | None:
        """How far this snapshot's time lies beyond ``now`` + :data:`FUTURE_TOLERANCE`; None when within."""
        excess = self.datetime - now
        return excess if excess > FUTURE_TOLERANCE else None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["short_id"] = self.short_id
        written = self.written_datetime
        d["written"] = written.isoformat(timespec="seconds") if written is not None else None
        return d


def newest(
    snaps: Iterable[Snapshot],
    accept: Callable[[Snapshot], bool] | None = None,
    *,
    now: datetime | None = None,
) -> tuple[Snapshot | None, list[Snapshot]]:
    """What ``latest`` means: ``(the newest accepted snapshot by time, ties broken by id, among those not
    more than FUTURE_TOLERANCE ahead of now; the accepted snapshots skipped for being in the future)``."""
    now = now or datetime.now(UTC)
    best: Snapshot | None = None
    future: list[Snapshot] = []
    for s in snaps:
        if accept is not None and not accept(s):
            continue
        if s.ahead(now) is not None:
            future.append(s)
        elif best is None or (s.datetime, s.id) > (best.datetime, best.id):
            best = s
    return best, future
