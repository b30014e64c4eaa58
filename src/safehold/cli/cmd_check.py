"""``safehold check``."""

from __future__ import annotations

import click

from safehold.cli.app import App, pass_app
from safehold.engine.checker import Checker, parse_subset
from safehold.errors import IntegrityError
from safehold.operations.bootstrap import enabled as bootstrap_enabled
from safehold.operations.bootstrap import verify_bootstrap


@click.command()
@click.option("--read-data", is_flag=True, help="Also read, decrypt and verify every blob of every pack.")
@click.option("--read-data-subset", metavar="N%|K/M", help="Read and verify only a subset of the packs.")
@pass_app
def check(app: App, read_data: bool, read_data_subset: str | None) -> None:
    """Check the repository's integrity; reports every problem found."""
    if read_data_subset:
        parse_subset(read_data_subset)
    repo = app.open_repo()
    lock = repo.lock(exclusive=False, operation="check")
    try:
        result = Checker(repo, app.progress()).run(
            read_data=read_data or bool(read_data_subset), subset=read_data_subset
        )
    finally:
        lock.release()
    boot_notes, boot_problems = (
        verify_bootstrap(repo.backend, read=read_data or bool(read_data_subset))
        if bootstrap_enabled()
        else ([], [])
    )
    for problem in boot_problems:  # not damage: the data is unaffected, but a bare host cannot install
        app.warn(f"warning: {problem}")
    lines = [f"error: {e}" for e in result.errors] + [f"note: {n}" for n in [*result.notes, *boot_notes]]
    lines.append(
        f"checked {result.snapshots} snapshots, {result.trees} trees, {result.packs} packs"
        + (f"; read {result.packs_read} packs ({result.blobs_read} blobs)" if result.packs_read else "")
    )
    lines.append("no errors were found" if result.ok else f"{len(result.errors)} error(s) found")
    app.emit(
        result.as_dict() | {"bootstrap": {"notes": boot_notes, "problems": boot_problems}}, "\n".join(lines)
    )
    if not result.ok:
        raise IntegrityError(f"check found {len(result.errors)} error(s)")


COMMANDS = [check]
