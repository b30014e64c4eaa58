"""What the CLI does around the commands people must hear about: notifications at their start and end.

:func:`instrument` wraps the callback of a notified command (``backup``, ``check``, ``drill``,
``forget``/``prune``) so that, once its arguments are parsed, :func:`begin` announces it (the start ping
runs in the background). ``main`` calls :func:`finish` with the exit code and the error, if any; it turns
them and the command's :class:`~safehold.cli.app.Outcome` into one event (``backup.partial``,
``check.failure``...) and sends it. A failed or slow delivery is a warning on stderr, never a change of
the exit code.
"""

from __future__ import annotations

import functools
import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import click

from safehold.cli.app import App
from safehold.errors import EXIT_OK, EXIT_PARTIAL, SafeholdError
from safehold.notify import Delivery, Event, Notifier, redactor_for

#: Command name -> the operation its events are named after.
NOTIFIED: dict[str, str] = {
    "backup": "backup",
    "check": "check",
    "drill": "drill",
    "forget": "prune",
    "prune": "prune",
}
_MARK = "_safehold_observed"
#: The command line being run (main sets it), for the messages' "command:" line.
ARGV: list[str] = []


@dataclass
class Observed:
    operation: str
    notifier: Notifier
    command: str
    started: float = field(default_factory=time.monotonic)


def instrument(name: str, command: click.Command) -> click.Command:
    """``command`` with :func:`begin` run before its callback, when ``name`` is a notified command."""
    operation = NOTIFIED.get(name)
    callback = command.callback
    if operation is None or callback is None or getattr(callback, _MARK, False):
        return command

    @functools.wraps(callback)
    def observed(*args: Any, **kwargs: Any) -> Any:
        app = click.get_current_context().find_object(App)
        if app is not None:
            begin(app, operation, profile=kwargs.get("profile"))
        return callback(*args, **kwargs)

    setattr(observed, _MARK, True)
    command.callback = observed
    return command


def command_line(args: list[str]) -> str:
    return "safehold " + shlex.join(args)


def begin(app: App, operation: str, *, profile: str | None = None) -> None:
    """Set up the notifier for ``operation`` (nothing without a configuration that notifies) and announce
    the start. Never raises: a configuration that does not load is the command's own error to report."""
    try:
        config = app.config()
    except SafeholdError:
        app._config_loaded = False  # the command loads it again and reports the problem
        return
    if config is None:
        return
    notifier = Notifier(config.notifications, host=socket.gethostname())
    if not notifier.configured:
        return
    notifier.redactor = redactor_for(config, app.secrets)
    if operation == "backup" and profile is None:
        profile = config.defaults.profile
    app.outcome.profile = app.outcome.profile or profile
    line = command_line(ARGV)
    app.operation = Observed(operation, notifier, notifier.redactor(line))
    notifier.begin(operation, profile=app.outcome.profile, command=app.operation.command)


def event_kind(operation: str, code: int, partial: bool) -> str:
    if code == EXIT_OK and not partial:
        return f"{operation}.success"
    if operation == "backup" and (partial or code == EXIT_PARTIAL):
        return "backup.partial"
    return f"{operation}.failure"


def finish(app: App, code: int, error: SafeholdError | None) -> list[Delivery]:
    """Send the event of the operation that ran (if one was begun) and warn about failed deliveries."""
    observed: Observed | None = app.operation
    if observed is None:
        return []
    notifier = observed.notifier
    for secret in app.secrets:
        notifier.redactor.add(secret)
    out = app.outcome
    kind = event_kind(observed.operation, code, out.partial)
    snaps = [s[:8] for s in out.snapshot_ids]
    what = f"{observed.operation}" + (f" of profile {out.profile}" if out.profile else "")
    if kind.endswith(".success"):
        summary = f"{what} on {notifier.host} completed" + (f": snapshot {snaps[0]}" if snaps else "")
    elif kind == "backup.partial":
        summary = f"{what} on {notifier.host} wrote snapshot {snaps[0] if snaps else '?'}, but it is partial"
    else:
        summary = f"{what} on {notifier.host} FAILED" + (f": {error.message}" if error else "")
    tail = list(app.journal)
    if error is not None:
        tail.append(f"error: {error.message}")
    lines = notifier.settings.log_lines
    event = Event(
        kind,
        notifier.host,
        summary,
        profile=out.profile,
        snapshot_ids=out.snapshot_ids,
        error=error.message if error else None,
        hint=error.hint if error else None,
        details=out.details[:50],
        log_tail=tail[-lines:] if lines else [],
        command=observed.command,
        duration=time.monotonic() - observed.started,
    )
    deliveries = notifier.finish(event)
    for d in deliveries:
        if not d.ok:
            app.warn(f"warning: notification to {d.target} failed: {d.message}")
    app.operation = None
    return deliveries
