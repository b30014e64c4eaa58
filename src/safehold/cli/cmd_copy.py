"""``safehold copy --to URL | --from URL [SNAPSHOT...]``."""

from __future__ import annotations

import click

from safehold.cli.app import App, other_password_env, pass_app
from safehold.engine.util import human_bytes
from safehold.errors import UsageError
from safehold.operations.maintenance.copy import copy_snapshots


@click.command()
@click.argument("snapshots", nargs=-1)
@click.option("--to", "to_url", metavar="URL", help="Copy from --repo to this repository.")
@click.option("--from", "from_url", metavar="URL", help="Copy from this repository to --repo.")
@click.option(
    "--other-password-file",
    envvar="SAFEHOLD_OTHER_PASSWORD_FILE",
    help="Passphrase file of the other repository [env: SAFEHOLD_OTHER_PASSWORD_FILE].",
)
@click.option(
    "--other-password-command",
    envvar="SAFEHOLD_OTHER_PASSWORD_COMMAND",
    help="Command printing the other repository's passphrase [env: SAFEHOLD_OTHER_PASSWORD_COMMAND].",
)
@pass_app
def copy(
    app: App,
    snapshots: tuple[str, ...],
    to_url: str | None,
    from_url: str | None,
    other_password_file: str | None,
    other_password_command: str | None,
) -> None:
    """Copy snapshots (all by default) to or from another repository, sending only missing data.

    The other repository's passphrase comes from --other-password-file, --other-password-command or
    SAFEHOLD_OTHER_PASSWORD. Make the other repository with 'init --copy-chunker-params-from' so that the
    two deduplicate with each other.
    """
    if bool(to_url) == bool(from_url):
        raise UsageError("copy takes exactly one of --to URL or --from URL")
    other = App(
        password_from=None if (other_password_file or other_password_command) else other_password_env(),
        password_file=other_password_file,
        password_command=other_password_command,
    )
    other_url = to_url or from_url
    here = app.open_repo()
    there = other.open_repo(other_url)
    app._backends += other._backends
    src, dst = (here, there) if to_url else (there, here)
    result = copy_snapshots(src, dst, list(snapshots) or None, progress=app.progress())
    lines = [f"{old[:8]} -> {new[:8]}" for old, new in result.ids.items()]
    lines.append(
        f"copied {len(result.copied)} snapshot(s), skipped {len(result.skipped)} already present; "
        f"sent {result.blobs_copied} blobs ({human_bytes(result.bytes_copied)}); a copy is also found "
        "by its original id"
    )
    app.emit(result.as_dict(), "\n".join(lines))


COMMANDS = [copy]
