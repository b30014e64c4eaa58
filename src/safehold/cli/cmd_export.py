"""``safehold export SNAPSHOT DIR | FILE.tar.gz | FILE.tar.zst``."""

from __future__ import annotations

import click

from safehold.cli.app import App, pass_app
from safehold.engine.util import human_bytes
from safehold.operations.export.snapshot import ExportOptions, export_snapshot

WARNING = (
    "warning: this export is NOT encrypted. It holds secrets in plain form"
    " (see RESTORE.md inside it); keep it on encrypted storage, readable by root only."
)


@click.command("export")
@click.argument("snapshot")
@click.argument("output", type=click.Path())
@click.option(
    "--gzip-level",
    type=click.IntRange(1, 9),
    default=6,
    show_default=True,
    help="gzip level of the .gz files (and of a .tar.gz output).",
)
@click.option(
    "--zstd-level",
    type=click.IntRange(1, 19),
    default=3,
    show_default=True,
    help="zstandard level of a .tar.zst output.",
)
@pass_app
def export(app: App, snapshot: str, output: str, gzip_level: int, zstd_level: int) -> None:
    """Export SNAPSHOT (``latest``, an id or id prefix) as plain files for people and tools without
    safehold: OUTPUT is a new (or empty) folder, or a file ending in .tar.gz or .tar.zst.

    The layout is the original plan's: app/application.tar.gz, database/full_dump.sql.gz, config/,
    storage/app_storage.tar.gz, external-services/, system/, metadata.json, RESTORE.md and a
    checksums.txt that ``sha256sum -c`` verifies. The export is NOT encrypted.
    """
    repo = app.open_repo()
    result = export_snapshot(
        repo,
        ExportOptions(snapshot=snapshot, output=output, gzip_level=gzip_level, zstd_level=zstd_level),
        app.progress(),
    )
    for w in result.warnings:
        app.warn(f"warning: {w}")
    app.warn(WARNING)
    for s in result.secrets[:20]:
        app.info(f"  secret: {s}")
    where = result.output if result.format == "dir" else f"{result.output} (folder {result.top}/ inside)"
    text = (
        f"exported snapshot {result.snapshot.short_id} to {where}: {result.files} files, "
        f"{human_bytes(result.bytes)} of content"
        + (f", archive {human_bytes(result.size)}" if result.format != "dir" else "")
        + f"\nverify with: {result.verify_command}"
    )
    app.emit(result.as_dict(), text)


COMMANDS = [export]
