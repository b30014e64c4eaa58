"""``safehold check``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from safehold.backends.base import FileType
from safehold.cli.app import App, pass_app
from safehold.cli.thaw_options import from_params, thaw_options
from safehold.engine.check.checker import Checker, parse_subset, select_packs
from safehold.errors import ColdStorageError, IntegrityError, UsageError
from safehold.operations.backup.bootstrap import enabled as bootstrap_enabled
from safehold.operations.backup.bootstrap import verify_bootstrap
from safehold.operations.observe.checkrecord import now_utc, record_check
from safehold.operations.restore.thaw import eta, prepare


@click.command()
@click.option("--read-data", is_flag=True, help="Also read, decrypt and verify every blob of every pack.")
@click.option("--read-data-subset", metavar="N%|K/M", help="Read and verify only a subset of the packs.")
@thaw_options
@pass_app
def check(app: App, /, read_data: bool, read_data_subset: str | None, **thaw: Any) -> None:
    """Check the repository's integrity; reports every problem found. Packs in an archive storage class
    are reported as such (not damage); --read-data --thaw requests their restore first."""
    cold_opts = from_params(thaw)
    if read_data_subset:
        parse_subset(read_data_subset)
    reading = read_data or bool(read_data_subset)
    if cold_opts.request and not reading:
        raise UsageError("--thaw goes with --read-data or --read-data-subset (the packs to read)")
    repo = app.open_repo()
    selected = None
    if cold_opts.request:  # choose the packs to read, and thaw them, before taking the lock: it may be hours
        selected = select_packs(sorted(fi.name for fi in repo.backend.list(FileType.DATA)), read_data_subset)
        prepare(repo, set(selected), cold_opts, app.info)
    lock = repo.lock(exclusive=False, operation="check")
    started = now_utc()
    # bootstrap/ lies outside the format: its files are read and hashed (SHA-256 releases the interpreter
    # lock) in a thread while the repository is checked
    boot = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safehold-bootstrap")
    boot_check = boot.submit(verify_bootstrap, repo.backend, read=reading) if bootstrap_enabled() else None
    try:
        try:
            result = Checker(repo, app.progress()).run(
                read_data=reading, subset=read_data_subset, packs=selected
            )
        finally:
            lock.release()
        record_check(repo, result, started, read_data=read_data, subset=read_data_subset, warn=app.warn)
        boot_notes, boot_problems = boot_check.result() if boot_check is not None else ([], [])
    finally:
        boot.shutdown(wait=True, cancel_futures=True)
    for problem in boot_problems:  # not damage: the data is unaffected, but a bare host cannot install
        app.warn(f"warning: {problem}")
    lines = [f"error: {e}" for e in result.errors] + [f"note: {n}" for n in [*result.notes, *boot_notes]]
    if result.cold:
        shown = ", ".join(p[:16] for p in sorted(result.cold)[:10]) + (
            " ..." if len(result.cold) > 10 else ""
        )
        lines.append(
            f"note: {len(result.cold)} data pack(s) are in an archive storage class and were not read "
            f"(not damage; the index says what they hold): {shown}"
        )
    lines.append(
        f"checked {result.snapshots} snapshots, {result.trees} trees, {result.packs} packs"
        + (f"; read {result.packs_read} packs ({result.blobs_read} blobs)" if result.packs_read else "")
    )
    lines.append("no errors were found" if result.ok else f"{len(result.errors)} error(s) found")
    lines += [f"advice: {a}" for a in result.advice]
    app.emit(
        result.as_dict() | {"bootstrap": {"notes": boot_notes, "problems": boot_problems}}, "\n".join(lines)
    )
    if not result.ok:
        raise IntegrityError(f"check found {len(result.errors)} error(s)")
    if result.cold and reading:
        raise ColdStorageError(
            f"the data of {len(result.cold)} pack(s) in an archive storage class was not read (no damage found)",
            hint=f"Add --thaw to request their restore ({eta(['GLACIER', 'DEEP_ARCHIVE'], 'Standard')} with "
            "the Standard tier) and --wait to wait for them.",
        )


COMMANDS = [check]
