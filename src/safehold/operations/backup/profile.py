"""A profile backup: hooks, every component of the profile into one snapshot, root files, off-site copies.

Order: ``before_backup`` hooks (a failing ``abort`` hook stops the run before anything is written) ->
components (each into its own folder; a failed one makes the snapshot partial unless optional) ->
``metadata.json``, ``backup.log``, ``RESTORE.md`` and the configuration (``safehold.toml``, secret
references only) at the snapshot root -> ``after_backup`` hooks (``always`` ones also after a failure)
-> copies to the profile's off-site repositories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from safehold.config.schema import Config
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.progress import Progress
from safehold.errors import RepositoryNotFound, SafeholdError, SourceError
from safehold.operations.backup.components import ComponentResult, backup_components, log_time
from safehold.operations.backup.guide import backup_log, metadata_json, restore_guide
from safehold.operations.backup.hooks import HookResult, run_hook

CONFIG_FILE = "safehold.toml"


@dataclass
class OffsiteResult:
    name: str
    ok: bool
    message: str
    hint: str = ""
    #: The copy's id in the off-site repository (the snapshot's own id also names it there).
    snapshot_id: str | None = None


@dataclass
class ProfileRun:
    profile: str | None
    snapshot: Snapshot | None
    results: list[ComponentResult] = field(default_factory=list)
    hooks: list[HookResult] = field(default_factory=list)
    offsite: list[OffsiteResult] = field(default_factory=list)
    error: str | None = None
    #: the error that stopped the run (its exit code and hint are the CLI's), with ``error`` its message
    failure: SafeholdError | None = None

    @property
    def failed_components(self) -> list[ComponentResult]:
        return [r for r in self.results if r.status == "failed" and not r.optional]

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.snapshot is not None
            and not self.failed_components
            and all(o.ok for o in self.offsite)
            and all(h.ok or not h.abort for h in self.hooks)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "snapshot_id": self.snapshot.id if self.snapshot else None,
            "partial": bool(self.snapshot and self.snapshot.partial),
            "ok": self.ok,
            "error": self.error,
            "components": {r.name: r.as_dict() for r in self.results},
            "hooks": [h.__dict__ for h in self.hooks],
            "offsite": [o.__dict__ for o in self.offsite],
        }


def backup_profile(
    repo: Repository,
    config: Config,
    profile: str | None,
    *,
    repo_location: str,
    progress: Progress | None = None,
    open_offsite: Callable[[str], Repository] | None = None,
) -> ProfileRun:
    """Run a whole profile backup. Never raises for component, hook or off-site failures: they are in
    the returned :class:`ProfileRun` (whose ``ok`` says whether everything succeeded)."""
    from safehold.operations.maintenance.copy import copy_snapshots

    profile_name = profile or config.defaults.profile
    names = config.profile_components(profile)
    prof = config.profiles.get(profile_name) if profile_name else None
    run = ProfileRun(profile_name, None)
    log: list[str] = []
    started = datetime.now(UTC)

    for hook in config.hooks.before_backup:
        res = run_hook(hook, "before_backup")
        run.hooks.append(res)
        log.append(f"{log_time()} before_backup {res.message}")
        if res.abort:
            run.error = f"before_backup {res.message}; no backup was taken"
            _after_hooks(config, run, failed=True)
            return run
    try:
        components = [(n, config.build_source(n), config.components[n].optional) for n in names]
        options = {n: config.components[n].options for n in names}

        def root_files(results: list[ComponentResult]) -> dict[str, bytes]:
            return {
                "metadata.json": metadata_json(
                    profile=profile_name,
                    started=started,
                    results=results,
                    tags=list(prof.tags) if prof else [],
                ),
                "backup.log": backup_log(log, results),
                "RESTORE.md": restore_guide(
                    repo_location=repo_location,
                    profile=profile_name,
                    results=results,
                    component_options=options,
                ),
                CONFIG_FILE: config.to_toml().encode(),
            }

        snap, results = backup_components(
            repo,
            components,
            snap_fields={
                "profile": profile_name,
                "tags": sorted(set(prof.tags if prof else [])),
                "paths": [f"component:{n}" for n in names],
            },
            progress=progress,
            root_files=root_files,
        )
        run.snapshot, run.results = snap, results
    except SafeholdError as exc:
        run.error, run.failure = exc.message, exc
    _after_hooks(config, run, failed=not run.ok)
    if run.snapshot is not None and not run.failed_components and prof is not None:
        for name in prof.offsite:
            if open_offsite is None:
                run.offsite.append(OffsiteResult(name, False, "no way to open off-site repositories"))
                continue
            try:
                dst = open_offsite(name)
                copied = copy_snapshots(repo, dst, [run.snapshot.id])
                new_id = copied.ids.get(run.snapshot.id)
                run.offsite.append(
                    OffsiteResult(
                        name,
                        True,
                        f"copied as {new_id[:8]} ({copied.bytes_copied} bytes sent)"
                        if new_id
                        else "already there",
                        snapshot_id=new_id,
                    )
                )
            except RepositoryNotFound as exc:
                hint = (
                    f"Create it with 'safehold --offsite {name} init' (it takes the main repository's "
                    "deduplication parameters), or run the backup with --init-offsite."
                )
                run.offsite.append(OffsiteResult(name, False, exc.message, hint))
            except SafeholdError as exc:
                run.offsite.append(OffsiteResult(name, False, exc.message, exc.hint))
    return run


def _after_hooks(config: Config, run: ProfileRun, *, failed: bool) -> None:
    for hook in config.hooks.after_backup:
        if failed and not hook.always:
            continue
        res = run_hook(hook, "after_backup")
        run.hooks.append(res)


def require_ok(run: ProfileRun) -> None:
    """Raise the error that matches a failed run (for the CLI's exit code)."""
    if run.failure is not None:
        raise run.failure  # e.g. LockLost: its own exit code and hint
    if run.error:
        raise SourceError(run.error)
    if run.failed_components:
        names = ", ".join(r.name for r in run.failed_components)
        raise SourceError(
            f"snapshot {run.snapshot.short_id if run.snapshot else '?'} is partial: component(s) {names} failed",
            hint="See the component errors above and the snapshot's backup.log.",
        )
    bad = [o for o in run.offsite if not o.ok]
    if bad:
        raise SourceError(
            f"off-site copy to {', '.join(o.name for o in bad)} failed: {bad[0].message}",
            hint=bad[0].hint or None,
        )
