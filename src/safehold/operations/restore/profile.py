"""Restoring components, or the whole server, from a profile snapshot: plan first, then execute.

The component definitions come from the configuration stored inside the snapshot (``safehold.toml``),
so a bare-metal host needs nothing but the repository and its passphrase; a local configuration is
only used for snapshots that carry none. Components run in dependency order (packages, system config,
files, databases, Redis, SaaS, commands). Before anything is overwritten, a *safety snapshot* of what
is about to be replaced is taken into the same repository (tag ``safety``), unless disabled.

A component whose plan fails (typically a SaaS component whose API key is read from the application's
.env, which a files component of the same restore brings back first) is planned again when its turn
comes, after the components before it were restored; only if that fails too is it reported as failed.

With a target root, secret references to files that the snapshot's ``files`` components hold (the .env
of ``{file = "/var/www/app/.env", key = "DB_PASSWORD"}``) are read from below the target root, where
the restore puts them. The restore's database overrides (``--db-host`` ...) apply to the health checks
of the components they redirect, so the checks look at what was restored.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from safehold.config.loader import parse_toml, validate
from safehold.config.schema import Config
from safehold.engine.format.pack import DATA
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import Node
from safehold.engine.format.treewalk import find_node
from safehold.engine.progress import Progress
from safehold.errors import ConfigError, NotFound, RestoreRefused, SafeholdError, UsageError
from safehold.health import HealthResult, below_root, run_health_checks
from safehold.operations.backup.components import EngineComponentReader, backup_components
from safehold.operations.backup.guide import restore_order
from safehold.operations.backup.profile import CONFIG_FILE
from safehold.operations.restore.latest import newest_completed
from safehold.sources.base import Redirect, RestorePlan, RestoreReport, Source, SourceContext


@dataclass
class RestoreRequest:
    components: list[str]
    target_root: str | None = None
    dry_run: bool = False
    force: bool = False
    safety_snapshot: bool = True
    install_packages: bool = False
    db: dict[str, Any] = field(default_factory=dict)  # host, port, user, database, password (SecretRef dict)
    redis: dict[str, Any] = field(default_factory=dict)  # host, port (default: the db redirect, if any)
    health_checks: bool = True
    #: Run the reload steps restored components name (``nginx -t && systemctl reload nginx``) at the end.
    reload_services: bool = False
    #: Per-component restore options (``--set retell.base_url=...``), checked by the component's kind.
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def redirect(self) -> Redirect:
        """Where the restore goes, for every kind to map onto its own restore options."""
        return Redirect(self.target_root, dict(self.db), dict(self.redis), self.install_packages)


@dataclass
class ComponentRestore:
    name: str
    kind: str
    plan: RestorePlan
    result: RestoreReport | None = None
    error: str | None = None
    #: "refused: WHAT; --force replaces it" when the source refused to replace existing data
    refused: str | None = None


@dataclass
class ReloadResult:
    """One reload step run after the restore (``--reload-services``)."""

    command: str
    ok: bool
    message: str


def next_steps(items: list[ComponentRestore]) -> list[str]:
    """The reload steps the components' plans name (``details["next_steps"]``), each once, in order."""
    out: list[str] = []
    for item in items:
        report = item.result or item.plan
        for step in report.details.get("next_steps", []) if item.error is None else []:
            if isinstance(step, str) and step not in out:
                out.append(step)
    return out


@dataclass
class ServerRestoreResult:
    snapshot: Snapshot
    items: list[ComponentRestore]
    safety_snapshot: str | None = None
    health: list[HealthResult] = field(default_factory=list)
    #: (check name, why) of the configured checks that did not run
    skipped_checks: list[tuple[str, str]] = field(default_factory=list)
    reloads: list[ReloadResult] = field(default_factory=list)

    @property
    def restored(self) -> bool:
        """Every component was restored (health checks and reload steps aside)."""
        return all(i.error is None for i in self.items)

    @property
    def failed_checks(self) -> list[str]:
        return [h.name for h in self.health if not h.ok]

    @property
    def ok(self) -> bool:
        return self.restored and not self.failed_checks and all(r.ok for r in self.reloads)

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot.id,
            "safety_snapshot": self.safety_snapshot,
            "ok": self.ok,
            "restored": self.restored,
            "failed_health_checks": self.failed_checks,
            "components": {
                i.name: {
                    "kind": i.kind,
                    "plan": i.plan.actions,
                    "warnings": i.plan.warnings + (i.result.warnings if i.result else []),
                    "done": i.result.actions if i.result else None,
                    "error": i.error,
                    "refused": i.refused,
                    "next_steps": (i.result or i.plan).details.get("next_steps", []),
                }
                for i in self.items
            },
            "next_steps": next_steps(self.items),
            "reloads": [r.__dict__ for r in self.reloads],
            "health": [h.as_dict() for h in self.health],
            "skipped_health_checks": [{"name": n, "reason": r} for n, r in self.skipped_checks],
        }


def snapshot_config(repo: Repository, snap: Snapshot) -> Config | None:
    """The configuration stored inside a profile snapshot, or None for a snapshot without one."""
    try:
        node = find_node(repo, bytes.fromhex(snap.tree), CONFIG_FILE)
    except NotFound:
        return None
    text = b"".join(repo.load_blob(DATA, b) for b in node.content).decode()
    return validate(
        parse_toml(text, f"{CONFIG_FILE} in snapshot {snap.short_id}"),
        f"{CONFIG_FILE} in snapshot {snap.short_id}",
    )


def _context(source: Source, req: RestoreRequest, dry_run: bool) -> SourceContext:
    """The restore options of ``source``: the request's redirect as its kind takes it, then the
    component's ``--set`` overrides (checked against the kind's ``RestoreOptions`` by the source)."""
    opts = source.redirect(req.redirect)
    opts.update(req.overrides.get(source.name, {}))
    return SourceContext(dry_run=dry_run, force=req.force, options=opts)


def _under(path: str, roots: list[str]) -> bool:
    path = os.path.normpath(path)
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _rebase_secrets(value: Any, roots: list[str], target_root: str) -> Any:
    """``value`` with every ``{file = P, ...}`` secret reference whose P lies below ``roots`` moved
    below ``target_root``."""
    if isinstance(value, dict):
        if (
            isinstance(value.get("file"), str)
            and set(value) <= {"file", "key"}
            and _under(value["file"], roots)
        ):
            return {**value, "file": os.path.join(target_root, os.path.normpath(value["file"]).lstrip("/"))}
        return {k: _rebase_secrets(v, roots, target_root) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase_secrets(v, roots, target_root) for v in value]
    return value


def effective_config(config: Config, req: RestoreRequest) -> Config:
    """The configuration the restore uses: with a target root, secret files below the paths the
    snapshot's components restore are read from where the restore puts them (see the module docstring)."""
    if not req.target_root:
        return config
    roots = [p for name in config.components for p in config.build_source(name).restored_paths()]
    out = copy.deepcopy(config)
    for comp in out.components.values():
        comp.options = _rebase_secrets(comp.options, roots, req.target_root)
    return out


def _plan_one(
    repo: Repository, snap: Snapshot, config: Config, req: RestoreRequest, name: str
) -> ComponentRestore:
    kind = config.components[name].kind
    try:
        source: Source = config.build_source(name)
        reader = EngineComponentReader(repo, snap, name)
        return ComponentRestore(name, kind, source.plan_restore(reader, _context(source, req, dry_run=True)))
    except UsageError:
        raise  # a bad --set value: the whole command stops before anything is planned or restored
    except RestoreRefused as exc:
        # existing data and no --force: a state of the target, not something an earlier component fixes
        refused = f"refused: {exc.message}; --force replaces it"
        return ComponentRestore(name, kind, RestorePlan(component=name), error=refused, refused=refused)
    except SafeholdError as exc:
        # A component that cannot be planned now is shown with the reason and planned again when its
        # turn comes (an earlier component may restore what it needs); the rest goes on.
        msg = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return ComponentRestore(name, kind, RestorePlan(component=name, warnings=[msg]), error=msg)


def plan_restore(
    repo: Repository, snap: Snapshot, config: Config, req: RestoreRequest
) -> list[ComponentRestore]:
    """Build (and, through each source's dry run, describe) the restore of the requested components."""
    config = effective_config(config, req)
    present = {n for n, c in snap.components.items() if isinstance(c, dict) and c.get("status") == "ok"}
    wanted = sorted(present) if req.components == ["all"] else req.components
    for name in wanted:
        if name not in snap.components:
            raise NotFound(
                f"component {name!r} is not in snapshot {snap.short_id}",
                hint=f"It holds: {', '.join(sorted(snap.components)) or '(no components)'}.",
            )
        if name not in present:
            other = newest_completed(repo, name)
            raise NotFound(
                f"component {name!r} failed at backup time and is not in snapshot {snap.short_id}",
                hint=f"Its newest complete copy is in snapshot {other.short_id} ('--snapshot latest' takes it)."
                if other
                else "No snapshot holds a complete copy of it; see 'safehold snapshots'.",
            )
        if name not in config.components:
            raise ConfigError(f"component {name!r} is not defined in the configuration")
    for name in wanted:  # unknown --set keys and bad values stop the restore before any planning
        source = config.build_source(name)
        source.restore_options(source.redirect(req.redirect) | req.overrides.get(name, {}))
    unknown = sorted(set(req.overrides) - set(wanted))
    if unknown:
        raise UsageError(
            f"--set names component(s) not being restored: {', '.join(unknown)}",
            hint=f"Restoring: {', '.join(wanted)}.",
        )
    order = restore_order([(n, config.components[n].kind) for n in wanted])
    items = [_plan_one(repo, snap, config, req, name) for name in order]
    for i, item in enumerate(items):
        if item.error is not None and item.refused is None and i > 0:
            item.plan.warnings.append("planned again after the components before it are restored")
    return items


def _safety_sources(
    config: Config, items: list[ComponentRestore], req: RestoreRequest
) -> list[tuple[str, Source, bool]]:
    """Sources that capture the *current* state of what the restore will replace (all optional): each
    kind says what its restore replaces (``Source.safety_source``). Databases, Redis and SQLite files are
    replaced only with ``--force`` (without it a source refuses existing data), so they are captured only
    then; files are captured where they exist below the target root; SaaS configuration and the system
    component always. Nothing is captured for a component restored elsewhere (``--db-name``,
    ``--db-host``, ``--set C.path=...``, ``--set C.base_url=...``)."""
    out: list[tuple[str, Source, bool]] = []
    for item in items:
        if item.error is not None:
            continue
        source = config.build_source(item.name)
        safety = source.safety_source(_context(source, req, dry_run=False))
        if safety is not None:
            out.append((item.name, safety, True))
    return out


def safety_components(config: Config, items: list[ComponentRestore], req: RestoreRequest) -> list[str]:
    """The components whose current state the safety snapshot captures (empty: none is taken)."""
    if not req.safety_snapshot:
        return []
    return [name for name, _source, _optional in _safety_sources(effective_config(config, req), items, req)]


def raise_refusals(items: list[ComponentRestore]) -> None:
    """Raise RestoreRefused naming every component whose plan was refused (existing data, no --force):
    a restore that cannot finish does not start, so nothing is changed."""
    refused = [i for i in items if i.refused]
    if refused:
        raise RestoreRefused(
            "restore refused, nothing was changed: "
            + "; ".join(f"{i.name}: {(i.refused or '').removeprefix('refused: ')}" for i in refused),
            hint="Pass --force to replace what exists (a safety snapshot of it is taken first), restore into "
            "another database with --db-name, or leave those components out.",
        )


def execute_restore(
    repo: Repository,
    snap: Snapshot,
    config: Config,
    req: RestoreRequest,
    items: list[ComponentRestore],
    *,
    progress: Progress | None = None,
) -> ServerRestoreResult:
    """Take the safety snapshot, restore every planned component in order, then run health checks."""
    if req.dry_run:
        raise UsageError("execute_restore called for a dry run")
    raise_refusals(items)
    stored_config = config
    config = effective_config(config, req)
    result = ServerRestoreResult(snap, items)
    if req.safety_snapshot:
        sources = _safety_sources(config, items, req)
        if sources:
            safety, _ = backup_components(
                repo,
                sources,
                snap_fields={
                    "tags": ["safety"],
                    "profile": None,
                    "paths": [f"safety-before-restore:{snap.id}"],
                },
                progress=progress,
                # carries the configuration too, so that 'restore --snapshot SAFETY' can undo this restore
                root_files=lambda _results: {CONFIG_FILE: stored_config.to_toml().encode()},
            )
            result.safety_snapshot = safety.id
    folders: list[tuple[bytes, Node]] = []
    for n, item in enumerate(items):
        if item.error is not None:
            if n == 0:
                continue
            again = _plan_one(repo, snap, config, req, item.name)
            if again.error is not None:
                item.error = again.error
                continue
            item.plan, item.error = again.plan, None
        source: Source = config.build_source(item.name)
        try:
            reader = EngineComponentReader(repo, snap, item.name, folders)
            item.result = source.apply(item.plan, reader, _context(source, req, dry_run=False))
        except SafeholdError as exc:
            item.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except OSError as exc:
            item.error = f"{type(exc).__name__}: {exc}"
    EngineComponentReader.reapply_folder_metadata(folders, restore_owner=os.geteuid() == 0)
    if req.reload_services:
        result.reloads = run_reloads(next_steps(items))
    if req.health_checks and req.components == ["all"] and config.health_checks:
        checks, result.skipped_checks = (
            below_root(config.health_checks, req.target_root)
            if req.target_root
            else (config.health_checks, [])
        )
        result.health = run_health_checks(checks, _check_targets(config, req))
    return result


def run_reloads(steps: list[str], timeout: float = 300.0) -> list[ReloadResult]:
    """Run each reload step with ``/bin/sh -c`` (they are safehold's own fixed commands, such as
    ``nginx -t && systemctl reload nginx``, never text from a snapshot); each runs even when an earlier
    one failed, since they concern different services."""
    from safehold import proc

    out = []
    for step in steps:
        res = proc.run_capture(["/bin/sh", "-c", step], timeout=timeout)
        msg = "ok" if res.ok else res.last_error()
        out.append(ReloadResult(step, res.ok, msg))
    return out


def _check_targets(config: Config, req: RestoreRequest) -> dict[str, dict[str, Any]]:
    """Component settings for the health checks, redirected like the restore (each kind says how:
    ``--db-*`` including ``--db-name`` for a database server, so that the check finds the database where
    the restore created it; a SQLite file below ``req.target_root``)."""
    return {
        name: config.build_source(name).redirected_settings(dict(comp.options), req.redirect)
        for name, comp in config.components.items()
    }


def resolve_config(repo: Repository, snap: Snapshot, local: Config | None) -> Config:
    cfg = snapshot_config(repo, snap)
    if cfg is not None:
        return cfg
    if local is not None:
        return local
    raise ConfigError(
        f"snapshot {snap.short_id} carries no configuration and none was given",
        hint="Restore a snapshot made by 'safehold backup --profile', or pass --config; for snapshots of "
        "plain paths use 'safehold restore SNAPSHOT --target DIR'.",
    )
