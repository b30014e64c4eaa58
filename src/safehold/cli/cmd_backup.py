"""``safehold backup``."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import click

from safehold.cli.app import App, pass_app
from safehold.cli.repo_setup import create_repository, write_bootstrap
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import FUTURE_TOLERANCE
from safehold.engine.util import human_bytes, human_span
from safehold.errors import PartialResult, RepositoryNotFound, SafeholdError, UsageError
from safehold.operations.backup.paths import BackupOptions, backup_paths, time_ahead

if TYPE_CHECKING:
    from safehold.operations.backup.profile import ProfileRun


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option(
    "-e", "--exclude", "excludes", multiple=True, help="Exclude a gitignore-style pattern (repeatable)."
)
@click.option(
    "--exclude-file",
    "exclude_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Read exclude patterns from a file (repeatable).",
)
@click.option("--host", help="Host name to record (default: this host).")
@click.option("--time", "when", help="Snapshot time to record (ISO-8601; default: now).")
@click.option("-x", "--one-file-system", is_flag=True, help="Do not cross file-system boundaries.")
@click.option("--exclude-caches", is_flag=True, help="Skip the contents of folders holding a CACHEDIR.TAG.")
@click.option(
    "--exclude-if-present",
    multiple=True,
    metavar="NAME",
    help="Skip the contents of folders holding a file of this name (repeatable).",
)
@click.option("--no-cache", is_flag=True, help="Read every file; do not use or update the files cache.")
@click.option(
    "-p", "--profile", help="Back up this profile of the configuration (default: defaults.profile)."
)
@click.option(
    "--init-offsite",
    is_flag=True,
    help="Create the profile's off-site repositories that do not exist yet (with the main repository's "
    "deduplication parameters), then copy to them.",
)
@click.option(
    "--forget",
    "forget_after",
    is_flag=True,
    help="After a successful profile backup, forget the profile's snapshots that its retention does not "
    "keep (as 'safehold forget --profile P'; run 'safehold prune' to free their space).",
)
@pass_app
def backup(
    app: App,
    paths: tuple[str, ...],
    tags: tuple[str, ...],
    excludes: tuple[str, ...],
    exclude_files: tuple[str, ...],
    host: str | None,
    when: str | None,
    one_file_system: bool,
    exclude_caches: bool,
    exclude_if_present: tuple[str, ...],
    no_cache: bool,
    profile: str | None,
    init_offsite: bool,
    forget_after: bool,
) -> None:
    """Back up PATHS, or the components of a configured profile, into a new snapshot; print its id."""
    if not paths:
        _backup_profile(app, profile, init_offsite=init_offsite, forget_after=forget_after)
        return
    if forget_after:
        raise UsageError("--forget is for profile backups (the profile's retention applies)")
    if profile:
        raise UsageError("give either PATHS or --profile, not both")
    if init_offsite:
        raise UsageError("--init-offsite is for profile backups (their off-site copies)")
    patterns = list(excludes)
    for f in exclude_files:
        with open(f, encoding="utf-8") as fh:
            patterns += [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    ahead = time_ahead(when)
    if ahead is not None:
        skipped = ahead > FUTURE_TOLERANCE
        app.warn(
            f"warning: --time {when} is {human_span(ahead)} in the future of this machine's clock"
            + ("; 'latest' will not pick this snapshot until then" if skipped else "")
        )
    repo = app.open_repo()
    preflight(app, repo, profile=None, components=[], paths=list(paths), host=host)
    opts = BackupOptions(
        paths=list(paths),
        tags=list(tags),
        excludes=patterns,
        host=host,
        time=when,
        one_file_system=one_file_system,
        exclude_caches=exclude_caches,
        exclude_if_present=list(exclude_if_present),
        use_cache=not no_cache,
    )
    result = backup_paths(repo, opts, app.progress())
    snap = result.snapshot
    app.outcome.snapshot_ids = [snap.id]
    app.outcome.partial = snap.partial
    app.outcome.details = [str(e) for e in result.errors[:50]]
    write_bootstrap(app, repo.backend)
    s = snap.summary
    text = (
        f"files: {s['files']} ({s['files_read']} read, {s['files_cached']} unchanged), dirs: {s['dirs']}\n"
        f"processed {human_bytes(s['bytes_total'])}, added {human_bytes(s['added_bytes_new_stored'])} "
        f"to the repository in {s['duration_seconds']:.1f}s\n"
        f"snapshot {snap.id[:8]} saved" + (" (partial)" if snap.partial else "")
    )
    for err in result.errors:
        app.warn(f"warning: {err}")
    app.emit({"snapshot_id": snap.id, "partial": snap.partial, "errors": result.errors, "summary": s}, text)
    if snap.partial:
        raise PartialResult(
            f"snapshot {snap.id[:8]} is partial: {len(result.errors)} item(s) could not be read",
        )


def _backup_profile(app: App, profile: str | None, *, init_offsite: bool, forget_after: bool) -> None:
    from safehold.operations.backup.profile import backup_profile, require_ok

    config = app.config(required=True)
    assert config is not None
    repo = app.open_repo()
    preflight(
        app, repo, profile=profile or config.defaults.profile, components=config.profile_components(profile)
    )

    def open_offsite(name: str) -> Repository:
        other = App(config_path=app.config_path, offsite=name)
        try:
            backend = other.backend()
            if init_offsite and not backend.exists():
                created, _ = create_repository(app, backend, other.get_password(), chunker_from=repo.config)
                app.info(f"created off-site repository {name} at {backend.properties.location}")
                return created
            if not backend.exists():
                raise RepositoryNotFound(f"no repository at {backend.properties.location}")
            return Repository.open(backend, other.get_password())
        finally:
            app._backends += other._backends

    opened: list[Repository] = []

    def open_and_refresh(name: str) -> Repository:
        dst = open_offsite(name)
        opened.append(dst)
        return dst

    location = app.repo_url or config.repository.url
    run = backup_profile(
        repo, config, profile, repo_location=location, progress=app.progress(), open_offsite=open_and_refresh
    )
    _record(app, run)
    for written in [repo, *opened]:
        write_bootstrap(app, written.backend)
    lines = [f"  hook: {h.message}" for h in run.hooks if h.stage == "before_backup"]
    for r in run.results:
        mark = "ok" if r.status == "ok" else ("FAILED (optional)" if r.optional else "FAILED")
        lines.append(
            f"  {r.name:<14} {r.kind:<12} {mark:<18} {human_bytes(r.size):>10} {r.duration:7.1f}s"
            + (f"  {r.error}" if r.error else "")
        )
        if r.error and r.hint:
            lines.append(f"  {'':<14} hint: {r.hint}")
    lines += [f"  hook: {h.message}" for h in run.hooks if h.stage != "before_backup"]
    for o in run.offsite:
        lines.append(f"  off-site {o.name}: {'ok' if o.ok else 'FAILED'} {o.message}")
        if not o.ok and o.hint:
            lines.append(f"  {'':<14} hint: {o.hint}")
    if run.snapshot is not None:
        lines.append(
            f"snapshot {run.snapshot.id[:8]} saved (profile {run.profile or '-'})"
            + (" (partial)" if run.snapshot.partial else "")
        )
    result = run.as_dict()
    forget_error: SafeholdError | None = None
    good = run.snapshot is not None and not (run.failure or run.error or run.failed_components)
    if forget_after and good:
        from safehold.cli.cmd_forget import render
        from safehold.operations.maintenance.forget import Selection, forget

        try:
            done = forget(repo, policy=None, config=config, selection=Selection(profiles=[run.profile or ""]))
            lines.append("forget:")
            lines += [f"  {line}" for line in render(done).splitlines()]
            result["forget"] = done.as_dict()
        except SafeholdError as exc:
            forget_error = exc
            lines.append(f"forget: FAILED {exc.message}")
            result["forget"] = {"error": exc.message}
    app.emit(result, "\n".join(lines))
    require_ok(run)
    if forget_error is not None:
        raise forget_error


def preflight(
    app: App,
    repo: Repository,
    *,
    profile: str | None,
    components: list[str],
    paths: list[str] | None = None,
    host: str | None = None,
) -> None:
    """The checks before a backup (:mod:`safehold.operations.backup.preflight`): warnings for a folder that
    will be nearly full and for components that cannot run (disk.low sent once when a folder gets
    low); raises PreflightFailed, before anything is written, when the backup cannot fit."""
    from safehold.cli import aftermath
    from safehold.config.defaults import PREFLIGHT
    from safehold.operations.backup.preflight import low_file_systems, require_room, run_preflight

    config = app.config()
    if not (config.preflight if config is not None else PREFLIGHT).enabled:
        return
    started = time.monotonic()
    snapshots = list(repo.iter_snapshots(errors=[]))
    report = run_preflight(
        config,
        backend=repo.backend,
        snapshots=snapshots,
        profile=profile,
        components=components,
        paths=[os.path.abspath(p) for p in paths] if paths else None,
        host=host,
    )
    for folder in low_file_systems(report.folders):
        if folder.ok:
            app.warn(f"warning: {folder.message}")
    for finding in report.problems:
        app.warn(f"warning: preflight: component {finding.subject}: {finding.message}")
        if finding.hint:
            app.warn(f"hint: {finding.hint}")
    app.outcome.extra["preflight_seconds"] = round(time.monotonic() - started, 3)
    aftermath.disk_low(app, report.folders)  # one message per file system
    require_room(report)


def _record(app: App, run: ProfileRun) -> None:
    """The run's snapshot and what failed, for the notifications and the audit log."""
    out = app.outcome
    out.profile = run.profile
    if run.snapshot is not None:
        out.snapshot_ids = [run.snapshot.id]
        out.partial = run.snapshot.partial or bool(run.failed_components)
    out.details = [
        f"component {r.name}{' (optional)' if r.optional else ''}: {r.error}"
        for r in run.results
        if r.status == "failed"
    ]
    out.details += [h.message for h in run.hooks if not h.ok]
    out.details += [f"off-site copy to {o.name}: {o.message}" for o in run.offsite if not o.ok]
    if run.error and not run.results:
        out.details.append(run.error)


COMMANDS = [backup]
