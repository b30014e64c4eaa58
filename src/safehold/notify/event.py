"""An event and the message it becomes: what happened, where, to which snapshot, and the log's last lines.

A message is built only from what an operation reports (error messages, component results, log lines),
which by the project's rule never hold a secret; the :class:`~safehold.notify.redact.Redactor` then
removes every secret value the notifier knows of anyway, as a second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from safehold.config.notifications import EVENT_KINDS

_WORDS = {
    "start": "started",
    "success": "ok",
    "partial": "PARTIAL",
    "failure": "FAILED",
    "breach": "OBJECTIVE BREACHED",
    "warning": "WARNING",
    "test": "test message",
}


@dataclass
class Event:
    """Something to tell people about. ``kind`` is a key of :data:`EVENT_KINDS`."""

    kind: str
    host: str
    summary: str
    profile: str | None = None
    snapshot_ids: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    #: what failed, one line per item (a component and its error, an off-site copy...)
    details: list[str] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    command: str | None = None
    duration: float | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    @property
    def klass(self) -> str:
        return EVENT_KINDS[self.kind][0]

    @property
    def operation(self) -> str:
        return self.kind.split(".", 1)[0]

    def title(self) -> str:
        where = f"{self.host}" + (f", profile {self.profile}" if self.profile else "")
        if self.kind == "test":
            return f"safehold: test message from {where}"
        return f"safehold: {self.operation} {_WORDS[self.klass]} on {where}"

    def body(self) -> str:
        """The message text: plain lines, the same for every target (e-mail, chat, webhook)."""
        when = self.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        took = f" (took {self.duration:.1f} s)" if self.duration is not None else ""
        lines = [self.summary, "", f"host: {self.host}"]
        if self.profile:
            lines.append(f"profile: {self.profile}")
        lines.append(f"event: {self.kind} at {when}{took}")
        if self.snapshot_ids:
            lines.append(f"snapshot: {', '.join(self.snapshot_ids)}")
        if self.error:
            lines.append(f"error: {self.error}")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        if self.details:
            lines += ["", "what failed:", *(f"  - {d}" for d in self.details)]
        if self.log_tail:
            lines += ["", "last lines of the log:", *(f"  {line}" for line in self.log_tail)]
        if self.command:
            lines += ["", f"command: {self.command}"]
        return "\n".join(lines)
