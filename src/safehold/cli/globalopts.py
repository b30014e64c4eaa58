"""The global options, and the one rule that lets them stand anywhere on the command line.

``safehold --repo X snapshots`` and ``safehold snapshots --repo X`` mean the same, and so does
``safehold config check --config F``. The rule: the top-level group declares every global option (with
its environment variable); :func:`attach` adds the same options to every command and group below it,
recursively, when the command is loaded. There they carry no environment variable and only store what was
written into the shared :class:`~safehold.cli.app.App`. Written twice with two different values (``--repo A
backup --repo B``) is a usage error rather than a silent choice. The options attached to a command are
hidden from its ``--help``; its epilog says they are accepted there.

A command added to the command map gets them without doing anything: ``main._load_command`` attaches them
to whatever it loads, and ``tests/cli/test_global_options.py`` walks every command to prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Context meta key: the App fields set from the command line so far (for the "given twice" check).
_EXPLICIT = "safehold.global_options.explicit"
_ATTACHED = "_safehold_global_options"


@dataclass(frozen=True)
class GlobalOption:
    """One global option: its spellings, the App attribute it sets, its help and environment variable."""

    decls: tuple[str, ...]
    dest: str
    help: str
    flag: bool = False
    envvar: str | None = None
    metavar: str | None = None

    @property
    def long(self) -> str:
        return next(d for d in self.decls if d.startswith("--"))


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption(
        ("-r", "--repo"),
        "repo_url",
        "Repository URL or path [env: SAFEHOLD_REPOSITORY].",
        envvar="SAFEHOLD_REPOSITORY",
        metavar="URL",
    ),
    GlobalOption(
        ("--password-file",),
        "password_file",
        "Read the passphrase from this file [env: SAFEHOLD_PASSWORD_FILE].",
        envvar="SAFEHOLD_PASSWORD_FILE",
        metavar="FILE",
    ),
    GlobalOption(
        ("--password-command",),
        "password_command",
        "Run this command to get the passphrase [env: SAFEHOLD_PASSWORD_COMMAND].",
        envvar="SAFEHOLD_PASSWORD_COMMAND",
        metavar="COMMAND",
    ),
    GlobalOption(
        ("-c", "--config"),
        "config_path",
        "Configuration file [env: SAFEHOLD_CONFIG; default /etc/safehold/safehold.toml, "
        "~/.config/safehold/safehold.toml].",
        envvar="SAFEHOLD_CONFIG",
        metavar="FILE",
    ),
    GlobalOption(
        ("--offsite",),
        "offsite",
        "Work on the configuration's off-site repository NAME instead of the main one.",
        metavar="NAME",
    ),
    GlobalOption(
        ("--lock-wait",),
        "lock_wait",
        "Wait up to this long for another operation's conflicting lock, e.g. '10m' (default: fail at once) "
        "[env: SAFEHOLD_LOCK_WAIT].",
        envvar="SAFEHOLD_LOCK_WAIT",
        metavar="DURATION",
    ),
    GlobalOption(("--json",), "json", "Machine-readable JSON output on stdout.", flag=True),
    GlobalOption(("-q", "--quiet"), "quiet", "Print only errors.", flag=True),
    GlobalOption(("--debug",), "debug", "Show tracebacks for unexpected errors.", flag=True),
)

#: Every spelling of every global option (main.py reads --json and --debug before parsing).
SPELLINGS = frozenset(d for o in GLOBAL_OPTIONS for d in o.decls)

EPILOG = (
    "Global options (" + ", ".join(o.long if o.long != "--quiet" else "-q" for o in GLOBAL_OPTIONS) + ") "
    "may be given here too; see 'safehold --help'."
)


def group_options(f: F) -> F:
    """Decorate the top-level group with every global option (with environment variables)."""
    for o in reversed(GLOBAL_OPTIONS):
        f = click.option(
            *o.decls,
            o.dest,
            is_flag=o.flag,
            envvar=o.envvar,
            metavar=o.metavar,
            help=o.help,
        )(f)
    return f


def note_explicit(ctx: click.Context) -> None:
    """Remember which global options the top-level group got from the command line itself."""
    ctx.meta[_EXPLICIT] = {
        o.dest: ctx.params[o.dest]
        for o in GLOBAL_OPTIONS
        if ctx.get_parameter_source(o.dest) is click.core.ParameterSource.COMMANDLINE
    }


def _store(o: GlobalOption) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        from safehold.cli.app import App

        app = ctx.find_object(App)
        if app is None:  # the command runs without the group (a test calling it directly)
            return
        explicit: dict[str, Any] = ctx.meta.setdefault(_EXPLICIT, {})
        if o.dest in explicit and explicit[o.dest] != value:
            raise click.UsageError(
                f"{o.long} is given twice with different values ({explicit[o.dest]!r} and {value!r})", ctx
            )
        explicit[o.dest] = value
        setattr(app, o.dest, value)

    return callback


def attach(command: click.Command) -> click.Command:
    """Add the global options to ``command`` and, for a group, to every command below it. Idempotent."""
    if getattr(command, _ATTACHED, False):
        return command
    taken = {d for p in command.params for d in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    clash = sorted(taken & SPELLINGS)
    if clash:
        raise RuntimeError(f"command {command.name!r} defines global option(s) {', '.join(clash)} itself")
    for o in GLOBAL_OPTIONS:
        command.params.append(
            click.Option(
                list(o.decls),
                is_flag=o.flag,
                default=None if not o.flag else False,
                metavar=o.metavar,
                help=o.help,
                hidden=True,
                expose_value=False,
                callback=_store(o),
            )
        )
    command.epilog = f"{command.epilog}\n\n{EPILOG}" if command.epilog else EPILOG
    setattr(command, _ATTACHED, True)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            attach(sub)
    return command
