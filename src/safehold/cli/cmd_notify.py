"""``safehold notify test [TARGET]``: send a test message to the configured notification targets."""

from __future__ import annotations

import socket

import click

from safehold.cli.app import App, pass_app
from safehold.errors import SafeholdError
from safehold.notify import Notifier, redactor_for


@click.group()
def notify() -> None:
    """Notifications: test the configured targets."""


@notify.command("test")
@click.argument("target", required=False)
@pass_app
def notify_test(app: App, target: str | None) -> None:
    """Send a test message to every notification target of the configuration, or to TARGET (a name
    under [notifications.targets], a URL's reference as listed, or 'healthchecks' for the ping URL,
    which gets a /log ping that changes no state). Exit status 1 when a target did not receive it."""
    config = app.config(required=True)
    assert config is not None
    notifier = Notifier(config.notifications, host=socket.gethostname())
    notifier.redactor = redactor_for(config)
    deliveries = notifier.test(target)
    from safehold.operations.observe import alerts

    try:  # a target that receives the test counts as working again in 'status'
        alerts.record_deliveries(deliveries, "test", command="notify")
    except SafeholdError as exc:
        app.warn(f"warning: {exc.message}")
    lines = [
        f"{'sent' if d.ok else 'FAILED':7} {d.target:24} {d.message} ({d.seconds:.1f} s)" for d in deliveries
    ]
    failed = [d for d in deliveries if not d.ok]
    app.emit({"ok": not failed, "deliveries": [d.as_dict() for d in deliveries]}, "\n".join(lines))
    if failed:
        raise SafeholdError(
            f"{len(failed)} of {len(deliveries)} notification target(s) did not receive the test message",
            hint="Check the URL behind each reference named above (run the reference's command or look at "
            "the variable or file), and that this host can reach the service.",
        )


COMMANDS = [notify]
