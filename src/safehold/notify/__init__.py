"""Telling people what happened: notifications through apprise and healthchecks-style pings.

Glossary:

* **event** (:class:`~safehold.notify.event.Event`) — something worth telling: a kind from
  :data:`safehold.config.notifications.EVENT_KINDS` (``backup.partial``, ``rpo.breach``...), the host,
  profile, snapshot, error, hint, what failed and the log's last lines; it renders one title and body.
* **target** — an apprise URL from a secret reference, with the events it receives (``[notifications]``
  ``urls`` and ``targets.<name>``).
* **ping** (:mod:`~safehold.notify.ping`) — the healthchecks dead-man's switch: start, success, fail.
* **delivery** (:class:`~safehold.notify.deliver.Delivery`) — the outcome for one target; failures are
  warnings, never errors of the operation.
* **redactor** (:class:`~safehold.notify.redact.Redactor`) — masks every known secret value in what
  leaves the process.
* **notifier** (:class:`~safehold.notify.notifier.Notifier`) — all of it for one configuration, with
  one deadline.

Names are imported lazily: the redactor, which every command's audit record uses, comes without the
notification settings' pydantic models and the delivery code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safehold.notify.deliver import Delivery
    from safehold.notify.event import Event
    from safehold.notify.notifier import Notifier, redactor_for
    from safehold.notify.redact import Redactor

__all__ = ["Delivery", "Event", "Notifier", "Redactor", "redactor_for"]
_HOME = {"Delivery": "deliver", "Event": "event", "Notifier": "notifier", "redactor_for": "notifier",
         "Redactor": "redact"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"safehold.notify.{_HOME[name]}"), name)
