"""``safehold guard``: a backup before a deployment (or any risky command), and the command only after it.

The profile backup runs exactly as ``safehold backup --profile P`` does (hooks, components, off-site
copies, the same output). The command runs only when that backup completed: a failed or partial backup
stops here with the backup's exit code, and the ``guard.failure`` event tells people the command did not
run. Otherwise the command runs (argv, no shell, this terminal, ``SAFEHOLD_GUARD_SNAPSHOT`` set to the
snapshot id) and its exit code is guard's. The audit record holds both: the snapshot, the command (``argv``, masked
by :func:`~safehold.operations.observe.audit.masked_command`), whether it ran, its exit code and the backup's.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

import click

from safehold.cli import observe
from safehold.cli.app import App, pass_app
from safehold.cli.cmd_backup import _backup_profile
from safehold.errors import EXIT_OK, SafeholdError, UsageError
from safehold.notify import Redactor
from safehold.operations.observe.audit import masked_command

#: Environment variable holding the snapshot id, for the guarded command.
SNAPSHOT_ENV = "SAFEHOLD_GUARD_SNAPSHOT"
#: Exit codes of a command that could not be started (as POSIX shells report them).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def _run(argv: list[str], snapshot_id: str) -> tuple[int, str | None]:
    """Run ``argv`` on this terminal; (its exit code, None) or (126/127, why it could not start). A
    command killed by signal N exits 128+N. An interrupt of safehold waits for the command to end."""
    env = {**os.environ, SNAPSHOT_ENV: snapshot_id}
    try:
        proc = subprocess.Popen(argv, env=env)
    except FileNotFoundError:
        return EXIT_NOT_FOUND, f"{argv[0]}: command not found"
    except OSError as exc:
        return EXIT_NOT_EXECUTABLE, f"{argv[0]}: cannot run it: {exc.strerror}"
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached the command too; SIGTERM reached only us
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return (128 - code if code < 0 else code), None


@click.command()
@click.option(
    "-p", "--profile", help="Back up this profile of the configuration (default: defaults.profile)."
)
@click.argument("command", nargs=-1, required=True, metavar="-- COMMAND [ARG]...")
@pass_app
def guard(app: App, profile: str | None, command: tuple[str, ...]) -> int:
    """Back up, then run COMMAND only if the backup completed; exit with COMMAND's exit code (or the
    backup's when it failed or is partial, and COMMAND did not run). Both are recorded in the audit log.

    Example: safehold guard --profile full -- php artisan migrate --force
    """
    if observe.ARGV and "--" not in observe.ARGV:
        raise UsageError(
            "write the command after '--'",
            hint="For example: safehold guard --profile full -- php artisan migrate --force",
        )
    argv = list(command)
    out = app.outcome

    def masked() -> list[str]:  # once the backup ran, the secrets it resolved are known too
        redactor = app.operation.notifier.redactor if app.operation is not None else Redactor()
        for secret in app.secrets:
            redactor.add(secret)
        return masked_command(argv, redactor)

    out.extra["guard"] = {"argv": masked(), "ran": False}
    try:
        _backup_profile(app, profile, init_offsite=False, forget_after=False)
    except SafeholdError as exc:
        out.extra["guard"].update(argv=masked(), backup_exit_code=exc.exit_code)
        shown = shlex.join(out.extra["guard"]["argv"])
        out.operation_code = exc.exit_code
        out.details.append(f"not run: {shown}")
        app.warn(f"guard: the backup did not complete; the command was NOT run: {shown}")
        raise
    out.operation_code = EXIT_OK
    out.extra["guard"].update(argv=masked(), backup_exit_code=EXIT_OK)
    shown = shlex.join(out.extra["guard"]["argv"])
    snapshot = out.snapshot_ids[0] if out.snapshot_ids else ""
    app.info(f"guard: snapshot {snapshot[:8]} is complete; running: {shown}")
    code, problem = _run(argv, snapshot)
    out.extra["guard"].update(ran=problem is None, exit_code=code)
    if problem is not None:
        app.warn(f"guard: {problem}")
    app.info(f"guard: the command exited with status {code}")
    return code


COMMANDS = [guard]
