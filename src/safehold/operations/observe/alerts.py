"""What this host remembers between runs about its alerts: which notification targets failed, and which
objectives were already reported as breached.

One small JSON file beside the local audit log (``state.json`` in its folder; ``SAFEHOLD_AUDIT_LOG``
moves both), mode 0600, rewritten atomically under an exclusive ``flock`` of ``state.json.lock`` so that
two commands ending at once do not lose each other's update. It holds no secret: target names are the
configuration's names or a reference's description (``env:SLACK_URL``), messages are already masked.

* **targets** — per notification target: the last delivery's time and outcome, and for a target whose
  last delivery failed, how many failed in a row, since when, for which event and why. ``status``
  shows the failing ones (:func:`failing_targets`); one successful delivery clears a target.
* **breached** — the objectives (``rpo:host:profile``, ``rto:host:profile``) whose breach, and the
  folders (``disk:role:path``) whose shortage of space, was told to every target that wanted it
  (:func:`remember_breaches`). A breach is announced once when it starts
  (:func:`new_breaches`), not at every ``status`` run; when the objective is measured as met again it
  leaves the list, so the next breach is announced again. A breach whose notification failed is not
  remembered and is tried again next time. Nothing is sent while the state is locked.

A state file that cannot be read or written is ignored (a warning through the caller): alerts must never
fail an operation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safehold.errors import SafeholdError
from safehold.fsutil import atomic_write
from safehold.notify import Delivery
from safehold.operations.observe import audit

STATE_NAME = "state.json"
#: Targets kept in the state (a configuration with more is unusual; the oldest entries go first).
_MAX_TARGETS = 100


def state_path() -> Path:
    """``state.json`` in the folder of the local audit log."""
    return audit.default_path().with_name(STATE_NAME)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load(path: Path | None = None) -> dict[str, Any]:
    """The state ({} when there is none, or it is not a JSON object)."""
    path = path or state_path()
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _update(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """The state, to change in place; written back when the block ends without an exception."""
    path = path or state_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            path.with_name(path.name + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
    except OSError as exc:
        raise SafeholdError(f"cannot open the alert state {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = load(path)
        yield state
        atomic_write(path, json.dumps(state, sort_keys=True, indent=1).encode(), mode=0o600)
    except OSError as exc:
        raise SafeholdError(f"cannot write the alert state {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def record_deliveries(
    deliveries: Iterable[Delivery], event: str, *, command: str | None = None, path: Path | None = None
) -> None:
    """Remember the outcome of each delivery of ``event`` (raises SafeholdError when the state cannot be
    written)."""
    deliveries = list(deliveries)
    if not deliveries:
        return
    with _update(path) as state:
        targets: dict[str, Any] = state.setdefault("targets", {})
        if not isinstance(targets, dict):
            targets = state["targets"] = {}
        now = _now()
        for d in deliveries:
            old = targets.get(d.target) if isinstance(targets.get(d.target), dict) else {}
            assert isinstance(old, dict)
            if d.ok:
                targets[d.target] = {"last": now, "ok": True, "event": event}
                continue
            failures = _count(old.get("failures")) if old.get("ok", True) is False else 0
            targets[d.target] = {
                "last": now,
                "ok": False,
                "event": event,
                "sent_by": command,
                "message": d.message,
                "failures": failures + 1,
                "failing_since": old.get("failing_since") if failures else now,
            }
        for name in sorted(targets, key=lambda n: str(targets[n].get("last", "")))[:-_MAX_TARGETS]:
            del targets[name]


def failing_targets(path: Path | None = None) -> list[dict[str, Any]]:
    """The targets whose last delivery failed: name, failures in a row, since when, the last event,
    command and message; sorted by name."""
    targets = load(path).get("targets")
    if not isinstance(targets, dict):
        return []
    out = []
    for name, info in sorted(targets.items()):
        if isinstance(info, dict) and info.get("ok") is False:
            fields = {k: info.get(k) for k in ("failing_since", "last", "event", "sent_by", "message")}
            out.append({"target": str(name), "failures": _count(info.get("failures")), **fields})
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def breach_key(name: str, host: str | None, profile: str | None) -> str:
    return f"{name}:{host or ''}:{profile or ''}"


def new_breaches(breached: Iterable[str], measured: Iterable[str], path: Path | None = None) -> list[str]:
    """The keys of ``breached`` not announced before. Objectives ``measured`` now and met are forgotten
    (their next breach is announced again); those not measured this time are left as they are."""
    breached, measured = set(breached), set(measured)
    with _update(path) as state:
        known = state.get("breached")
        remembered = {str(k) for k in known} if isinstance(known, list) else set()
        remembered -= measured - breached
        state["breached"] = sorted(remembered)
    return sorted(breached - remembered)


def remember_breaches(keys: Iterable[str], path: Path | None = None) -> None:
    """Remember that the breaches ``keys`` were told to every target that wanted them."""
    keys = set(keys)
    if not keys:
        return
    with _update(path) as state:
        known = state.get("breached")
        remembered = {str(k) for k in known} if isinstance(known, list) else set()
        state["breached"] = sorted(remembered | keys)
