"""``safehold repair index`` and ``safehold repair snapshots``."""

from __future__ import annotations

import click

from safehold.cli.app import App, pass_app
from safehold.errors import PartialResult
from safehold.operations.maintenance.repair import repair_index, repair_snapshot_files


@click.group("repair")
def repair_group() -> None:
    """Repair a damaged repository: rebuild its index, rewrite snapshots without what is lost."""


@repair_group.command("index")
@pass_app
def index_cmd(app: App) -> None:
    """Rebuild the index from the packs' own headers (every pack's header is read once), replacing every
    index file: after index files were lost or damaged, or when 'check' finds packs in no index."""
    repo = app.open_repo()
    r = repair_index(repo, app.progress())
    lines = [
        f"read {r.packs} pack header(s): {r.blobs} blobs; wrote {r.index_written} index file(s), removed "
        f"{r.index_removed} old one(s)"
    ]
    lines += [f"unreadable: {u}" for u in r.unreadable]
    app.emit(r.as_dict(), "\n".join(lines))
    if r.unreadable:
        raise PartialResult(
            f"the index was rebuilt, but {len(r.unreadable)} pack(s) could not be read: their blobs are not in it",
            hint="Run 'safehold repair snapshots' to see and cut out what those packs held.",
        )


@repair_group.command("snapshots")
@click.option("--forget", is_flag=True, help="Remove each original once its repaired copy is written.")
@click.option(
    "--read-data", is_flag=True, help="Also read every data blob the snapshots use (finds damaged ones)."
)
@click.option("-n", "--dry-run", is_flag=True, help="Only list what is lost; write nothing.")
@pass_app
def snapshots_cmd(app: App, forget: bool, read_data: bool, dry_run: bool) -> None:
    """Write, for each snapshot that references missing or damaged data, a new snapshot without the files
    and folders that are lost (tagged 'repaired'); list exactly what was lost. The originals stay unless
    --forget. Snapshot files that cannot be read at all are listed (and removed with --forget). Exit code
    3 whenever something was lost."""
    repo = app.open_repo()
    r = repair_snapshot_files(
        repo, forget=forget, dry_run=dry_run, read_data=read_data, progress=app.progress()
    )
    lines = []
    for s in r.repaired:
        if s.unrecoverable:
            head = f"snapshot {s.snapshot.short_id}: nothing can be kept"
        elif s.new is not None:
            head = f"snapshot {s.snapshot.short_id}: repaired as {s.new.short_id}"
        else:
            head = f"snapshot {s.snapshot.short_id}: would be repaired"
        lines.append(f"{head}; lost {len(s.lost)} item(s):")
        lines += [f"  {line}" for line in s.lost]
    lines += [f"snapshot file {n[:16]} cannot be read: {e}" for n, e in r.damaged]
    lines += [f"removed snapshot {n[:8]}" for n in r.removed]
    lines.append(
        f"checked {r.checked} snapshot(s); {len(r.repaired)} with losses, {len(r.damaged)} unreadable"
    )
    app.emit(r.as_dict(), "\n".join(lines))
    if r.lost:
        raise PartialResult(
            f"{len(r.repaired)} snapshot(s) reference lost data and {len(r.damaged)} snapshot file(s) are "
            "unreadable" + (" (dry run: nothing written)" if dry_run else ""),
            hint="The lines above list every lost file; restore them from another copy (an off-site "
            "repository) if there is one.",
        )


COMMANDS = [repair_group]
