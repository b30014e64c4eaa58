"""``safehold log``: the audit log, from this host or from the repository."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from safehold.cli.app import App, pass_app
from safehold.config.duration import parse_duration
from safehold.errors import IntegrityError, SafeholdError, UsageError
from safehold.operations.observe import audit


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a time",
            hint="Give a duration back from now (24h, 7d, 2w) or an ISO-8601 time (2026-12-01T08:00).",
        ) from None
    return when if when.tzinfo else when.astimezone()


def _line(r: dict[str, Any]) -> str:
    try:
        when = datetime.fromisoformat(str(r.get("time"))).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        when = str(r.get("time"))[:19]
    snaps = ",".join(str(s)[:8] for s in r.get("snapshot_ids") or [])
    text = (
        f"{when}  {str(r.get('user', '?'))[:24]}@{str(r.get('host', '?'))[:16]}  "
        f"{r.get('result', '?'):11} safehold {' '.join(map(str, r.get('args') or [])) or r.get('command', '?')}"
    )
    if snaps:
        text += f"  snapshot {snaps}"
    text += f"  ({float(r.get('duration') or 0):.1f} s)"
    if r.get("error"):
        text += f"\n{'':21}error: {r['error']}"
    return text


@click.command("log")
@click.option(
    "--since",
    "since_text",
    metavar="WHEN",
    help="Only records since WHEN: a duration back (24h, 7d) or an ISO-8601 time.",
)
@click.option(
    "--repository",
    "from_repo",
    is_flag=True,
    help="Read the records stored (encrypted) in the repository, which outlive this host, instead of "
    "this host's log.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Check the local log's hash chain; exit 1 when a line was changed or removed.",
)
@pass_app
def log(app: App, since_text: str | None, from_repo: bool, verify: bool) -> None:
    """Show the audit log: every safehold operation with its time, user, host, command, result, snapshots
    and duration, oldest first."""
    after = _since(since_text)
    errors: list[str] = []
    if from_repo:
        if verify:
            raise UsageError(
                "--verify checks the local log",
                hint="The repository's records are authenticated one by one; damage is reported by reading them.",
            )
        records = audit.read_repository(app.open_repo(), errors)
        where = "the repository"
    else:
        path = audit.default_path()
        records = audit.read_local(path)
        where = str(path)
        if verify:
            errors = audit.verify_local(path)
    shown = list(audit.since(records, after))
    for problem in errors:
        app.warn(f"warning: {problem}")
    text = "\n".join([_line(r) for r in shown] + [f"{len(shown)} record(s) from {where}"])
    app.emit(shown, text)
    if errors and (verify or from_repo):
        raise (IntegrityError if from_repo else SafeholdError)(
            f"the audit log in {where} has {len(errors)} problem(s)",
            hint="Compare with the other copy ('safehold log --repository' or this host's log) to see what changed.",
        )


COMMANDS = [log]
