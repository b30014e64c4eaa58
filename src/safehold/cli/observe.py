"""What the CLI does around every command: notifications at the start and end of the ones people must
hear about, and one audit record per command.

:func:`instrument` wraps a command's callback so that, once its arguments are parsed, the command counts
as run (``--help`` and usage errors are not operations) and, for a notified command (``backup``,
``check``, ``drill``, ``forget``/``prune``, ``guard``), :func:`begin` announces it (the start ping runs in
the background). ``main`` calls :func:`finish` with the exit code and the error, if any; it turns them and
the command's :class:`~safehold.cli.app.Outcome` into one event (``backup.partial``, ``check.failure``...)
and sends it, then appends the audit record (:mod:`safehold.operations.observe.audit`) locally and, for commands
that can change the repository or take data out of it, into the repository. A failed or slow delivery and
an audit log that cannot be written are warnings on stderr, never a change of the exit code.
"""

from __future__ import annotations

import functools
import os
import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from safehold.cli import aftermath, jobs
from safehold.cli.aftermath import warn_failed
from safehold.cli.app import App
from safehold.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, SafeholdError
from safehold.operations.observe.audit import JOB_ENV

if TYPE_CHECKING:  # the notification code is imported only when a configuration notifies
    from safehold.notify import Delivery, Notifier

#: Command name -> the operation its events are named after.
NOTIFIED: dict[str, str] = {
    "backup": "backup",
    "guard": "backup",
    "check": "check",
    "drill": "drill",
    "forget": "prune",
    "prune": "prune",
}
#: Commands that run something else only after a good backup -> their event when the backup was not good.
GUARDS = {"guard": "guard.failure"}
#: Commands that only look (at the configuration, the repository's listings, this host): their record
#: stays local. Every other command that opened the repository with its key also records there.
LOCAL_ONLY = {"snapshots", "ls", "diff", "cat", "config", "doctor", "notify", "backend", "demo", "schedule",
              "status", "find", "verify-system", "report"}  # fmt: skip
#: Not recorded at all: reading the audit log itself.
UNRECORDED = {"log"}
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
    """``command`` (and a group's subcommands) with their callbacks marking the command as run, and
    with :func:`begin` before the callback of a notified command."""
    operation = NOTIFIED.get(name)
    callback = command.callback
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            instrument("", sub)
    if callback is None or getattr(callback, _MARK, False):
        return command

    @functools.wraps(callback)
    def observed(*args: Any, **kwargs: Any) -> Any:
        app = click.get_current_context().find_object(App)
        if app is not None and not isinstance(command, click.Group):
            app.ran = True
            jobs.delay()
            if operation is not None:
                begin(app, operation, profile=kwargs.get("profile"))
            jobs.take_lock(app)  # a scheduled job: after begin, so that a job that cannot run is notified
        return callback(*args, **kwargs)

    setattr(observed, _MARK, True)
    command.callback = observed
    return command


def command_line(args: list[str]) -> str:
    return "safehold " + shlex.join(args)


def own_args(args: list[str]) -> list[str]:
    """safehold's own arguments: those before a ``--`` (after it: the command ``guard`` runs)."""
    return args[: args.index("--")] if "--" in args else args


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
    from safehold.notify import Notifier, redactor_for

    notifier = Notifier(config.notifications, host=socket.gethostname())
    if not notifier.configured:
        return
    notifier.redactor = redactor_for(config, app.secrets)
    if operation == "backup" and profile is None:
        profile = config.defaults.profile
    app.outcome.profile = app.outcome.profile or profile
    from safehold.operations.observe.audit import masked_args

    line = command_line(masked_args(ARGV))
    app.operation = Observed(operation, notifier, notifier.redactor(line))
    notifier.begin(operation, profile=app.outcome.profile, command=app.operation.command)


def event_kind(operation: str, code: int, partial: bool) -> str:
    if code == EXIT_OK and not partial:
        return f"{operation}.success"
    if operation == "backup" and (partial or code == EXIT_PARTIAL):
        return "backup.partial"
    return f"{operation}.failure"


def finish(app: App, code: int, error: SafeholdError | None) -> None:
    """After the command: its event to the notification targets; the objectives measured again (the
    Prometheus textfile, breach alerts) and a lock that stopped it; then its audit record."""
    deliveries = app.sent + notify(app, code, error)
    if app.ran:
        deliveries += aftermath.run(app, error, command_line(ARGV))
    if app.ran and app.command_name not in UNRECORDED:
        record(app, code, error, deliveries)


def result_word(code: int, partial: bool) -> str:
    if code == EXIT_INTERRUPTED:
        return "interrupted"
    if code == EXIT_PARTIAL or (partial and code != EXIT_OK):
        return "partial"
    return "ok" if code == EXIT_OK else "failed"


def record(app: App, code: int, error: SafeholdError | None, deliveries: list[Delivery]) -> None:
    """Append the command's audit record locally and, when it may change the repository, there too."""
    from safehold.notify.redact import Redactor
    from safehold.operations.observe import audit

    redactor = app.operation.notifier.redactor if app.operation else Redactor(app.secrets)
    for secret in app.secrets:
        redactor.add(secret)
    out = app.outcome
    rec = audit.Record(
        command=app.command_name or "?",
        args=audit.masked_args(ARGV, redactor),
        result=result_word(code, out.partial),
        exit_code=code,
        duration=round(time.monotonic() - app.started, 3),
        error=redactor(error.message) if error else None,
        snapshot_ids=list(out.snapshot_ids),
        profile=out.profile,
        notifications_failed=[d.target for d in deliveries if not d.ok],
        job=os.environ.get(JOB_ENV) or None,
        extra=dict(out.extra),
    )
    try:
        audit.append_local(rec)
    except SafeholdError as exc:
        app.warn(f"warning: audit log: {exc.message}")
    dry_run = {"--dry-run", "-n"} & set(own_args(ARGV))  # a dry run writes nothing into the repository
    if app.repos and app.command_name not in LOCAL_ONLY and not dry_run:
        try:
            audit.append_repository(app.repos[0], rec)
        except SafeholdError as exc:
            app.warn(f"warning: the audit record could not be stored in the repository: {exc.message}")


def notify(app: App, code: int, error: SafeholdError | None) -> list[Delivery]:
    """Send the event of the operation that ran (if one was begun) and warn about failed deliveries."""
    observed: Observed | None = app.operation
    if observed is None:
        return []
    notifier = observed.notifier
    for secret in app.secrets:
        notifier.redactor.add(secret)
    out = app.outcome
    kind = event_kind(
        observed.operation, code if out.operation_code is None else out.operation_code, out.partial
    )
    if app.command_name in GUARDS and not kind.endswith(".success"):
        kind = GUARDS[app.command_name]  # the backup failed, so the guarded command did not run
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
    from safehold.notify import Event

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
    warn_failed(app, deliveries, kind)
    app.operation = None
    return deliveries
