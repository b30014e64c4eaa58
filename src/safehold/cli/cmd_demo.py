"""``safehold demo``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from safehold.cli.app import App, pass_app
from safehold.operations.demo import run_demo


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Empty folder to work in (default: a new temporary folder, kept afterwards).",
)
@pass_app
def demo(app: App, workdir: Path | None) -> None:
    """Show what safehold does on a sample application, with no server needed."""
    wd = workdir or Path(tempfile.mkdtemp(prefix="safehold-demo-"))
    say = app.info if app.json else click.echo
    figures = run_demo(wd, say)
    app.emit(figures, f"\nDemo complete. Everything is in {wd} (delete it when done).")


COMMANDS = [demo]
