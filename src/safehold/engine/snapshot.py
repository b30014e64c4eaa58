"""Snapshots: the root record of one backup.

Encoded as canonical JSON (sorted keys) and stored encrypted in ``snapshots/<sha256>``; the file name is
the snapshot id. A snapshot names its root tree, what was backed up and from where, and carries the
per-component metadata later steps need (database statistics for restore drills, tool versions,
export counts) plus summary statistics. ``original`` is the id of the snapshot this one was copied
from (``safehold copy``), so copies are recognised in the target.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from safehold.errors import IntegrityError

SNAPSHOT_VERSION = 1


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
    version: int = SNAPSHOT_VERSION
    id: str = field(default="", compare=False)

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d.pop("id")
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, snap_id: str) -> Snapshot:
        try:
            d = json.loads(raw)
            if d.get("version") != SNAPSHOT_VERSION:
                raise IntegrityError(f"snapshot {snap_id[:8]} has an unknown version")
            known = set(cls.__dataclass_fields__)
            s = cls(**{k: v for k, v in d.items() if k in known})
        except (ValueError, TypeError) as exc:
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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["short_id"] = self.short_id
        return d
