"""``safehold restore SNAPSHOT[:SUBPATH] --target DIR``."""

from __future__ import annotations

import click

from safehold.cli.app import App, pass_app
from safehold.engine.restorer import OVERWRITE_POLICIES
from safehold.engine.util import human_bytes
from safehold.errors import SafeholdError
from safehold.operations.restore import RestoreOptions, restore_snapshot, split_snapshot_arg


class RestoreFailed(SafeholdError):
    default_hint = "The files listed were not restored; nothing unverified was written. Run 'safehold check --read-data'."


@click.command()
@click.argument("snapshot")
@click.option(
    "-t",
    "--target",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to restore into; each backed-up absolute path is recreated below it.",
)
@click.option("-i", "--include", "includes", multiple=True, help="Restore only paths matching this pattern.")
@click.option(
    "-e", "--exclude", "excludes", multiple=True, help="Do not restore paths matching this pattern."
)
@click.option(
    "--overwrite",
    type=click.Choice(OVERWRITE_POLICIES),
    default="if-changed",
    show_default=True,
    help="What to do with files that already exist at the target.",
)
@click.option(
    "--verify", is_flag=True, help="Read the restored files back and compare them with the snapshot."
)
@pass_app
def restore(
    app: App,
    snapshot: str,
    target: str,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    overwrite: str,
    verify: bool,
) -> None:
    """Restore SNAPSHOT (``latest``, an id or id prefix; ``SNAPSHOT:/sub/path`` for part of it)."""
    snap_ref, sub = split_snapshot_arg(snapshot)
    repo = app.open_repo()
    opts = RestoreOptions(
        snapshot=snap_ref,
        target=target,
        subpath=sub,
        includes=list(includes),
        excludes=list(excludes),
        overwrite=overwrite,
        verify=verify,
    )
    result = restore_snapshot(repo, opts, app.progress())
    st = result.stats
    for w in st.warnings:
        app.warn(f"warning: {w}")
    text = (
        f"restored snapshot {result.snapshot.short_id} to {target}: {st.files} files, {st.dirs} folders, "
        f"{human_bytes(st.bytes_written)} written, {st.files_skipped} unchanged files skipped"
    )
    if verify:
        text += "\nverified: " + (
            "all files match" if not result.verify_errors else f"{len(result.verify_errors)} difference(s)"
        )
    app.emit(
        {"snapshot_id": result.snapshot.id, "stats": st.as_dict(), "verify_errors": result.verify_errors},
        text,
    )
    problems = st.errors + result.verify_errors
    if problems:
        for p in problems:
            app.warn(f"error: {p}")
        raise RestoreFailed(f"restore incomplete: {len(problems)} problem(s)")


COMMANDS = [restore]
