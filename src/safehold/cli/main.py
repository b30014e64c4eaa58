"""The ``safehold`` command: global options, the command list, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import traceback
from typing import Any

import click

from safehold import __version__
from safehold.cli import observe
from safehold.cli.app import CURRENT, EMITTED, App
from safehold.cli.globalopts import attach, group_options, note_explicit
from safehold.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    SafeholdError,
    without_self_reference,
)


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _load_command(cmd_name)


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@group_options
@click.version_option(__version__, prog_name="safehold")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """safehold: disaster recovery for self-hosted application servers.

    Deduplicated, compressed, always-encrypted snapshots on local disk, SFTP or S3; restores you can prove.
    Global options may also follow the command: 'safehold snapshots --repo /srv/backup/x'.
    """
    app = App(**options)
    app.command_name = ctx.invoked_subcommand
    app.close_later = bool(_IN_MAIN)
    CURRENT.append(app)
    ctx.obj = app
    note_explicit(ctx)
    ctx.call_on_close(app.close)


#: Command name -> the module defining it (in its COMMANDS list). Modules load only when their command
#: runs (or for --help), so that every invocation does not pay for every command's imports.
COMMAND_MODULES: dict[str, str] = {
    "init": "cmd_repo",
    "key": "cmd_repo",
    "unlock": "cmd_repo",
    "cat": "cmd_repo",
    "backup": "cmd_backup",
    "snapshots": "cmd_snapshots",
    "ls": "cmd_snapshots",
    "diff": "cmd_snapshots",
    "dump": "cmd_dump",
    "restore": "cmd_restore",
    "check": "cmd_check",
    "config": "cmd_config",
    "copy": "cmd_copy",
    "demo": "cmd_demo",
    "backend": "cmd_backend",
    "export": "cmd_export",
    "doctor": "cmd_doctor",
    "verify-system": "cmd_verify",
    "notify": "cmd_notify",
    "forget": "cmd_forget",
    "pin": "cmd_forget",
    "unpin": "cmd_forget",
    "prune": "cmd_prune",
    "repair": "cmd_repair",
    "log": "cmd_log",
    "status": "cmd_status",
    "drill": "cmd_drill",
    "report": "cmd_report",
    "guard": "cmd_guard",
    "schedule": "cmd_schedule",
}


def _load_command(name: str) -> click.Command | None:
    module = COMMAND_MODULES.get(name)
    if module is None:
        return None
    commands = importlib.import_module(f"safehold.cli.{module}").COMMANDS
    found = [c for c in commands if c.name == name]
    if len(found) != 1:
        raise RuntimeError(f"command {name!r} is not defined in safehold.cli.{module}")
    command: click.Command = found[0]
    return attach(observe.instrument(name, command))


def _report(exc: SafeholdError, as_json: bool, args: list[str]) -> int:
    hint = exc.hint and (without_self_reference(exc.hint, args) or "See the lines above for what failed.")
    click.echo(f"error: {exc.message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    if as_json and not EMITTED:
        click.echo(json.dumps({"error": exc.message, "hint": hint, "exit_code": exc.exit_code}))
    return exc.exit_code


#: Set while main() runs: it writes the audit record and closes the backends after the command.
_IN_MAIN: list[bool] = []


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map every outcome to an exit code (see ``safehold.errors.EXIT_CODES``); then
    notify about the operation that ran (:mod:`safehold.cli.observe`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    CURRENT.clear()
    observe.ARGV[:] = args
    error: list[SafeholdError] = []
    _IN_MAIN.append(True)
    try:
        code = _run(args, error)
    finally:
        _IN_MAIN.clear()
    for app in CURRENT:
        try:
            observe.finish(app, code, error[0] if error else None)
        except Exception as exc:  # notifying and auditing must never change the outcome
            click.echo(f"warning: notifications or audit failed: unexpected {type(exc).__name__}", err=True)
        app.close_later = False
        app.close_now()
    return code


def _run(args: list[str], error: list[SafeholdError]) -> int:
    own = observe.own_args(args)
    as_json = "--json" in own
    debug = "--debug" in own or os.environ.get("SAFEHOLD_DEBUG") == "1"
    try:
        rv = cli.main(args=args, prog_name="safehold", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SafeholdError as exc:
        if debug:
            traceback.print_exc()
        error.append(exc)
        return _report(exc, as_json, args)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        error.append(Interrupted("interrupted (SIGINT/SIGTERM)"))
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run again with --debug and report the traceback.", err=True)
        error.append(SafeholdError(f"unexpected {type(exc).__name__}: {exc}"))
        return EXIT_FAILURE


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def entry() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
