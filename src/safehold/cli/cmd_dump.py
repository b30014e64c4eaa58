"""``safehold dump SNAPSHOT PATH``: one file of a snapshot to stdout."""

from __future__ import annotations

import sys

import click

from safehold.cli.app import App, pass_app
from safehold.engine.format.pack import DATA
from safehold.engine.format.tree import FILE
from safehold.engine.format.treewalk import find_node
from safehold.errors import UsageError


@click.command()
@click.argument("snapshot")
@click.argument("path")
@pass_app
def dump(app: App, snapshot: str, path: str) -> None:
    """Write the file PATH of SNAPSHOT to stdout (verified, streamed), e.g. /RESTORE.md."""
    repo = app.open_repo()
    repo.load_index()
    node = find_node(repo, bytes.fromhex(repo.find_snapshot(snapshot).tree), path)
    if node.type != FILE:
        raise UsageError(
            f"{path} is a {node.type}, not a file", hint="Use 'safehold ls' or 'restore --target'."
        )
    out = sys.stdout.buffer
    for blob_id in node.content:
        out.write(repo.load_blob(DATA, blob_id))
    out.flush()


COMMANDS = [dump]
