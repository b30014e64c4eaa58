"""Recording a check's outcome in the repository (``results/``), without pydantic.

Every ``check`` is recorded as a result, as a drill is, so that ``status`` can say when the repository
was last checked. The document is the one :class:`~safehold.operations.observe.results.Result` reads
back (``results.load`` validates it there); it is written here as plain JSON because importing the
pydantic model costs a check ~60 ms of CPU (3% of ``check --read-data`` of the real corpus, more of a
small repository's). Older results of the same kind (type, host, profile) beyond :data:`KEEP` are
removed, as :func:`~safehold.operations.observe.results.record` does; a result that does not parse is
left alone here (``load`` reports it).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable
from typing import Any

from safehold.backends.base import FileType, Handle
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError

#: How many results of one (type, host, profile) are kept.
KEEP = 50
RESULT_VERSION = 1


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record_check(
    repo: Repository,
    result: Any,
    started: dt.datetime,
    *,
    read_data: bool,
    subset: str | None,
    warn: Callable[[str], None],
) -> None:
    """Record a check's outcome (``result``: the checker's CheckResult); a repository that cannot be
    written (read-only storage, an off-site copy) only costs a warning."""
    what = "read-data" if read_data else (f"read-data-subset {subset}" if subset else "structure")
    errors = list(result.errors)
    doc = {
        "version": RESULT_VERSION,
        "type": "check",
        "time": started.isoformat(timespec="seconds"),
        "host": socket.gethostname()[:255],
        "ok": bool(result.ok),
        "seconds": max(0.0, round((now_utc() - started).total_seconds(), 3)),
        "profile": None,
        "snapshot_id": None,
        "snapshot_host": None,
        "snapshot_time": None,
        "message": (
            f"{what}: " + (f"{len(errors)} error(s), first: {errors[0]}" if errors else "no errors")[:1900]
        )[:2000],
        "steps": [],
        "health": [],
        "details": {
            "mode": what,
            "snapshots": result.snapshots,
            "packs": result.packs,
            "packs_read": result.packs_read,
        },
    }
    try:
        name = repo.save_file(FileType.RESULT, json.dumps(doc, sort_keys=True).encode())
        _thin(repo, doc, name)
    except SafeholdError as exc:
        warn(f"warning: the check's result was not recorded in the repository: {exc.message}")


def _thin(repo: Repository, doc: dict[str, Any], name: str) -> None:
    """Remove the oldest results of ``doc``'s kind beyond :data:`KEEP` (``name``: ``doc``'s own file)."""
    same: list[tuple[dt.datetime, str]] = []
    for fi in repo.backend.list(FileType.RESULT):
        if fi.name == name:
            continue
        try:
            other = json.loads(repo.load_file(FileType.RESULT, fi.name))
            if not isinstance(other, dict) or (
                other.get("type"),
                other.get("host"),
                other.get("profile"),
            ) != (
                doc["type"],
                doc["host"],
                doc["profile"],
            ):
                continue
            when = dt.datetime.fromisoformat(other["time"])
            if when.tzinfo is None:
                continue
        except (SafeholdError, ValueError, TypeError, KeyError):
            continue  # unreadable or malformed: results.load reports it; nothing to thin here
        same.append((when, fi.name))
    same.sort(reverse=True)
    for _when, old in same[KEEP - 1 :]:
        try:
            repo.backend.remove(Handle(FileType.RESULT, old))
        except SafeholdError:
            pass  # another host removed it, or the storage refuses: the next recording tries again
