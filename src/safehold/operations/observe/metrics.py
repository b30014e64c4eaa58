"""The figures of ``status`` as a Prometheus textfile (node_exporter's textfile collector).

Written atomically (a scrape never sees half a file), mode 0644, to ``[status] prometheus_textfile``.
Label values come from the repository (host and profile names another host wrote), so they are escaped
for the exposition format (backslash, double quote, line break).
"""

from __future__ import annotations

import datetime as dt

from safehold.fsutil import atomic_write
from safehold.operations.observe.status import Status

_HELP = {
    "safehold_snapshot_last_complete_timestamp_seconds": "Time of the newest complete snapshot.",
    "safehold_snapshot_last_complete_age_seconds": "Age of the newest complete snapshot.",
    "safehold_snapshot_partial_since_complete": "Partial snapshots newer than the newest complete one.",
    "safehold_snapshots": "Snapshots of the host and profile.",
    "safehold_rpo_seconds": "The recovery point objective that applies.",
    "safehold_drill_last_timestamp_seconds": "Start of the newest drill.",
    "safehold_drill_last_success": "1 when the newest drill passed.",
    "safehold_drill_last_duration_seconds": "How long the newest drill took.",
    "safehold_rto_seconds": "The recovery time objective.",
    "safehold_check_last_timestamp_seconds": "Start of the newest recorded check.",
    "safehold_check_last_success": "1 when the newest recorded check passed.",
    "safehold_repository_size_bytes": "Bytes of every repository file.",
    "safehold_repository_data_bytes": "Bytes of the data packs.",
    "safehold_repository_snapshots": "Snapshots in the repository.",
    "safehold_deduplication_ratio": "Bytes the snapshots hold per byte stored.",
    "safehold_added_bytes_30d": "Bytes the backups of the last 30 days added.",
    "safehold_stale_locks": "Stale locks in the repository.",
    "safehold_objective_met": "1 when the objective is met.",
    "safehold_notification_failing_targets": "Notification targets whose last delivery failed.",
    "safehold_status_timestamp_seconds": "When these figures were computed.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str | None) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items() if v is not None)
    return "{" + inner + "}" if inner else ""


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def render(status: Status) -> str:
    """The exposition text (version 0.0.4) of ``status``."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}

    def add(name: str, value: float, **labels: str | None) -> None:
        samples[name].append(f"{name}{_labels(**labels)} {value:g}")

    for p in status.profiles:
        lab = {"host": p.host, "profile": p.profile or ""}
        add("safehold_snapshots", p.snapshots, **lab)
        add("safehold_snapshot_partial_since_complete", len(p.partial_since), **lab)
        if p.newest_complete is not None:
            add("safehold_snapshot_last_complete_timestamp_seconds", _ts(p.newest_complete.time), **lab)
            add("safehold_snapshot_last_complete_age_seconds", p.newest_complete.age_seconds, **lab)
        if p.rpo_seconds is not None:
            add("safehold_rpo_seconds", p.rpo_seconds, **lab)
    for d in status.drills:
        lab = {"host": d.host, "profile": d.profile or ""}
        if d.last is not None:
            add("safehold_drill_last_timestamp_seconds", _ts(d.last["time"]), **lab)
            add("safehold_drill_last_success", int(bool(d.last["ok"])), **lab)
            add("safehold_drill_last_duration_seconds", float(d.last["seconds"]), **lab)
        if d.rto_seconds is not None:
            add("safehold_rto_seconds", d.rto_seconds, **lab)
    if status.last_check is not None:
        add("safehold_check_last_timestamp_seconds", _ts(status.last_check["time"]))
        add("safehold_check_last_success", int(bool(status.last_check["ok"])))
    r = status.repository
    add("safehold_repository_size_bytes", r.size_bytes)
    add("safehold_repository_data_bytes", r.data_bytes)
    add("safehold_repository_snapshots", r.snapshots)
    if r.dedup_ratio is not None:
        add("safehold_deduplication_ratio", r.dedup_ratio)
    add("safehold_added_bytes_30d", r.added_30d_bytes)
    add("safehold_stale_locks", len(status.stale_locks))
    for o in status.objectives:
        add("safehold_objective_met", int(o.ok), objective=o.name, host=o.host, profile=o.profile)
    add("safehold_notification_failing_targets", len(status.notifications))
    add("safehold_status_timestamp_seconds", _ts(status.time))
    lines: list[str] = []
    for name, rows in samples.items():
        if rows:
            lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", *rows]
    return "\n".join(lines) + "\n"


def write_textfile(path: str, status: Status) -> None:
    atomic_write(path, render(status).encode(), mode=0o644)
