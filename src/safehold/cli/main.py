"""The ``safehold`` command: global options, the command list, and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import traceback

import click

from safehold import __version__
from safehold.cli.app import EMITTED, App
from safehold.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, SafeholdError


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _load_command(cmd_name)


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "-r",
    "--repo",
    "repo_url",
    envvar="SAFEHOLD_REPOSITORY",
    help="Repository URL or path [env: SAFEHOLD_REPOSITORY].",
)
@click.option("--password-file", envvar="SAFEHOLD_PASSWORD_FILE", help="Read the passphrase from this file.")
@click.option(
    "--password-command", envvar="SAFEHOLD_PASSWORD_COMMAND", help="Run this command to get the passphrase."
)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="SAFEHOLD_CONFIG",
    help="Configuration file [env: SAFEHOLD_CONFIG].",
)
@click.option(
    "--offsite",
    metavar="NAME",
    help="Work on the configuration's off-site repository NAME instead of the main one.",
)
@click.option("--json", "json_out", is_flag=True, help="Machine-readable JSON output on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, prog_name="safehold")
@click.pass_context
def cli(
    ctx: click.Context,
    repo_url: str | None,
    password_file: str | None,
    password_command: str | None,
    config_path: str | None,
    offsite: str | None,
    json_out: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """safehold: disaster recovery for self-hosted application servers.

    Deduplicated, compressed, always-encrypted snapshots on local disk, SFTP or S3; restores you can prove.
    """
    app = App(
        repo_url=repo_url,
        password_file=password_file,
        password_command=password_command,
        config_path=config_path,
        offsite=offsite,
        json=json_out,
        debug=debug,
        quiet=quiet,
    )
    ctx.obj = app
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
    return command


def _report(exc: SafeholdError, as_json: bool) -> int:
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    if as_json and not EMITTED:
        click.echo(json.dumps({"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}))
    return exc.exit_code


_GLOBAL_FLAGS = ("--json", "--debug", "--quiet", "-q")


def _hoist_global_flags(args: list[str]) -> list[str]:
    """Let the global flags stand anywhere on the line (``safehold backup ... --json``), like restic."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in _GLOBAL_FLAGS]
    return flags + [a for a in args[:end] if a not in _GLOBAL_FLAGS] + args[end:]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map every outcome to an exit code (see ``safehold.errors.EXIT_CODES``)."""
    args = _hoist_global_flags(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    debug = "--debug" in args or os.environ.get("SAFEHOLD_DEBUG") == "1"
    try:
        rv = cli.main(args=args, prog_name="safehold", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SafeholdError as exc:
        if debug:
            traceback.print_exc()
        return _report(exc, as_json)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run again with --debug and report the traceback.", err=True)
        return EXIT_FAILURE


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def entry() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
