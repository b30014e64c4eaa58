"""After a command, before its audit record: the objectives measured again and the alerts they call for.

* **The Prometheus textfile** (``[status] prometheus_textfile``) is rewritten after every operation that
  changes what ``status`` reports (:data:`MEASURED`: backup, guard, check, drill, forget, prune, status),
  also after a failed one, so the snapshot ages and the objectives stay current between ``status`` runs.
* **Breaches**: the same figures decide ``rpo.breach`` and ``rto.breach``. Each breach is sent once, when
  it starts (:mod:`safehold.operations.observe.alerts` remembers which were told), not at every run while it
  lasts; a breach whose delivery failed is tried again next time.
* **disk.low** (:func:`disk_low`, called by the backup's preflight while it runs): a folder the backup
  writes to would be fuller than ``[preflight] warn_usage``, or cannot take the backup; sent once when
  that starts, like a breach.
* **lock.held**: a command stopped by another operation's lock (exit 11) sends it when that lock is older
  than ``[notifications] lock_held_after`` or when the command waited for it in vain (``--lock-wait``).

Everything here is best effort: a status that cannot be computed, a textfile that cannot be written or a
notification that fails is a warning, never a change of the exit code. The status is computed only when
something needs it (a textfile, or a target that listens to breaches).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from safehold.cli.app import App
from safehold.errors import RepositoryLocked, SafeholdError

if TYPE_CHECKING:  # the notification code is imported only when a configuration is there
    from safehold.notify import Delivery, Event, Notifier

#: Commands after which the objectives are measured again.
MEASURED = {"backup", "guard", "check", "drill", "forget", "prune", "status"}
#: Objective name -> the event its breach sends (a failed check already sends check.failure).
BREACH_EVENTS = {"rpo": "rpo.breach", "rto": "rto.breach"}
_BREACH_HINTS = {
    "rpo": "Run the profile's backup now and find out why the scheduled ones did not complete "
    "('safehold log', 'safehold snapshots').",
    "rto": "Run 'safehold drill' and look at the slow or failed components it names.",
}


def run(app: App, error: SafeholdError | None, command: str) -> list[Delivery]:
    """Do what the command's end calls for (``command``: its command line, for the messages); returns
    the deliveries made (for the audit record)."""
    try:
        config = app.config()
    except SafeholdError:
        return []
    if config is None:
        return []
    from safehold.notify import Notifier, redactor_for

    host = socket.gethostname()
    notifier = Notifier(config.notifications, host=host)
    if notifier.configured:
        notifier.redactor = redactor_for(config, app.secrets)
    deliveries: list[Delivery] = []
    if isinstance(error, RepositoryLocked) and notifier.configured:
        deliveries += _lock_held(app, notifier, config, error, command)
    if app.command_name not in MEASURED or not app.repos:
        return deliveries
    wants_breaches = notifier.configured and any(
        _wants(on, kind) for _, on in notifier.targets.values() for kind in BREACH_EVENTS.values()
    )
    status = app.measured
    if status is None and (config.status.prometheus_textfile or wants_breaches):
        from safehold.operations.observe.status import compute_status

        try:
            status = compute_status(app.repos[0], config, hosts=[host])
        except SafeholdError as exc:
            app.warn(f"warning: the objectives could not be measured after the command: {exc.message}")
            return deliveries
    if status is None:
        return deliveries
    if wants_breaches:
        deliveries += _breaches(app, notifier, status, command)
    if config.status.prometheus_textfile:
        from safehold.operations.observe import alerts, metrics

        status.notifications = alerts.failing_targets()
        try:
            metrics.write_textfile(config.status.prometheus_textfile, status)
        except (SafeholdError, OSError) as exc:
            app.warn(f"warning: could not write {config.status.prometheus_textfile}: {exc}")
    return deliveries


def _wants(on: list[str], kind: str) -> bool:
    from safehold.config.notifications import wanted

    return wanted(on, kind)


def _breaches(app: App, notifier: Notifier, status: Any, command: str) -> list[Delivery]:
    """Send the breaches that started since the last time they were told; remember those delivered."""
    from safehold.operations.observe import alerts
    from safehold.operations.observe.status import human_duration

    measured = {
        alerts.breach_key(o.name, o.host, o.profile): o for o in status.objectives if o.name in BREACH_EVENTS
    }

    from safehold.notify import Event

    def event(o: Any) -> Event:
        where = "/".join(x for x in (o.host, o.profile) if x) or "repository"
        limit = f" of {human_duration(o.limit)}" if o.limit is not None else ""
        return Event(
            BREACH_EVENTS[o.name],
            notifier.host,
            f"the {o.name.upper()}{limit} is breached for {where}: {o.message}",
            profile=o.profile,
            error=o.message,
            hint=_BREACH_HINTS[o.name],
            command=notifier.redactor(command),
        )

    return _tell_once(app, notifier, measured, [key for key, o in measured.items() if not o.ok], event)


def _tell_once(
    app: App, notifier: Notifier, measured: dict[str, Any], breached: list[str], event: Callable[[Any], Event]
) -> list[Delivery]:
    """Send ``event(measured[key])`` for each key of ``breached`` not told before, and remember those
    delivered to every target (:mod:`safehold.operations.observe.alerts`; the keys of ``measured`` that
    are not breached are forgotten, so their next breach is told again). Failures are warnings."""
    from safehold.operations.observe import alerts

    try:
        new = alerts.new_breaches(breached, measured)
    except SafeholdError as exc:
        app.warn(f"warning: {exc.message}")
        return []
    deliveries: list[Delivery] = []
    told: list[str] = []
    for key in new:
        ev = event(measured[key])
        sent = notifier.send(ev)
        warn_failed(app, sent, ev.kind)
        deliveries += sent
        if all(d.ok for d in sent):
            told.append(key)
    try:
        alerts.remember_breaches(told)
    except SafeholdError as exc:
        app.warn(f"warning: {exc.message}")
    return deliveries


def disk_low(app: App, folders: list[Any]) -> None:
    """Send disk.low for each folder (a preflight's :class:`~safehold.operations.backup.preflight.FolderCheck`)
    that became low or too small since the last time it was told; a folder measured fine again is
    forgotten, so its next shortage is told again. Deliveries go into ``app.sent``."""

    try:
        config = app.config()
    except SafeholdError:
        return
    if config is None:
        return
    from safehold.notify import Notifier, redactor_for

    notifier = Notifier(config.notifications, host=socket.gethostname())
    if not notifier.configured or not any(_wants(on, "disk.low") for _, on in notifier.targets.values()):
        return
    notifier.redactor = redactor_for(config, app.secrets)
    from safehold.operations.backup.preflight import low_file_systems

    measured = {f"disk:{f.role}:{f.path}": f for f in folders if f.skipped is None}
    short = {id(f) for f in low_file_systems(folders)} | {id(f) for f in folders if not f.ok}

    from safehold.notify import Event

    def event(f: Any) -> Event:
        return Event(
            "disk.low",
            notifier.host,
            f"{app.command_name} on {notifier.host}: {f.message}",
            profile=app.outcome.profile,
            hint=f.hint
            or "Free space there before it runs out ('safehold forget --prune' for the repository).",
        )

    app.sent += _tell_once(app, notifier, measured, [k for k, f in measured.items() if id(f) in short], event)


def _lock_held(
    app: App, notifier: Notifier, config: Any, error: RepositoryLocked, command: str
) -> list[Delivery]:
    from safehold.config.duration import parse_duration
    from safehold.operations.observe.status import human_duration

    bound = parse_duration(config.notifications.lock_held_after).total_seconds()
    if not (error.waited > 0 or (error.held is not None and error.held > bound)):
        return []
    why = (
        f"waited {human_duration(error.waited)} in vain"
        if error.waited > 0
        else f"held for {human_duration(error.held)}, longer than {human_duration(bound)}"
    )
    from safehold.notify import Event

    event = Event(
        "lock.held",
        notifier.host,
        f"{app.command_name} on {notifier.host} did not run: another operation holds the repository's lock ({why})",
        profile=app.outcome.profile,
        error=error.message,
        hint=error.hint,
        command=notifier.redactor(command),
    )
    sent = notifier.send(event)
    warn_failed(app, sent, event.kind)
    return sent


def warn_failed(app: App, deliveries: list[Delivery], kind: str) -> None:
    """A warning per failed delivery; every outcome remembered for 'status' (a state that cannot be
    written is a warning too)."""
    from safehold.operations.observe import alerts

    for d in deliveries:
        if not d.ok:
            app.warn(f"warning: notification to {d.target} failed: {d.message}")
    try:
        alerts.record_deliveries(deliveries, kind, command=app.command_name)
    except SafeholdError as exc:
        app.warn(f"warning: {exc.message}")
