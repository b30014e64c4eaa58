"""``safehold restore``: a snapshot's files to a folder, or components (or ``all``) to their places.

Two forms:

* ``safehold restore SNAPSHOT[:SUBPATH] --target DIR`` — files of any snapshot into a folder.
* ``safehold restore COMPONENT... | all [--snapshot S]`` — components of a profile snapshot back to where
  they belong (files to their paths, dumps into database servers, exports through the SaaS APIs...),
  with a plan shown first and a safety snapshot of whatever will be replaced.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from safehold.cli.app import App, pass_app
from safehold.cli.thaw_options import from_params, thaw_options
from safehold.engine.restore.restorer import OVERWRITE_POLICIES
from safehold.engine.util import human_bytes
from safehold.errors import HealthCheckFailed, SafeholdError, UsageError
from safehold.operations.restore.snapshot import RestoreOptions, restore_snapshot, split_snapshot_arg
from safehold.operations.restore.thaw import ThawOptions, packs_for, prepare


class RestoreFailed(SafeholdError):
    default_hint = "The items listed were not restored; nothing unverified was written. Run 'safehold check --read-data'."


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="SNAPSHOT[:SUBPATH] | COMPONENT... | all")
@click.option(
    "-t",
    "--target",
    type=click.Path(file_okay=False),
    help="Restore SNAPSHOT's files into this folder (each backed-up absolute path is recreated below it).",
)
@click.option(
    "-i", "--include", "includes", multiple=True, help="With --target: only paths matching this pattern."
)
@click.option(
    "-e", "--exclude", "excludes", multiple=True, help="With --target: skip paths matching this pattern."
)
@click.option(
    "--overwrite",
    type=click.Choice(OVERWRITE_POLICIES),
    default="if-changed",
    show_default=True,
    help="With --target: what to do with files that already exist.",
)
@click.option("--verify", is_flag=True, help="With --target: read restored files back and compare them.")
@click.option(
    "-s",
    "--snapshot",
    "snapshot_ref",
    default="latest",
    show_default=True,
    help="Components: the snapshot to restore from.",
)
@click.option("--target-root", help="Components: restore files below this folder instead of '/'.")
@click.option("-n", "--dry-run", is_flag=True, help="Components: show the plan only.")
@click.option("--force", is_flag=True, help="Components: replace non-empty databases and changed files.")
@click.option("--no-safety-snapshot", is_flag=True, help="Components: do not snapshot what will be replaced.")
@click.option(
    "--install-packages", is_flag=True, help="Components: run the package install plan (system-info)."
)
@click.option("-y", "--yes", is_flag=True, help="Components: do not ask for confirmation on a terminal.")
@click.option("--db-host", help="Components: restore databases into this server.")
@click.option("--db-port", type=int, help="Components: database server port.")
@click.option("--db-user", help="Components: database user.")
@click.option("--db-name", help="Components: restore a single database under this name.")
@click.option(
    "--db-password-env", metavar="VAR", help="Components: environment variable holding the DB password."
)
@click.option(
    "--redis-host", help="Components: restore Redis into this server (default: --db-host, else as backed up)."
)
@click.option("--redis-port", type=int, help="Components: Redis server port.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="COMPONENT.KEY=VALUE",
    help="Components: a restore option for one component, e.g. retell.base_url=https://... (repeatable).",
)
@click.option(
    "--no-health-checks", is_flag=True, help="Components: skip the configured health checks after 'all'."
)
@click.option(
    "--reload-services",
    is_flag=True,
    help="Components: after restoring, run the reload steps the plan names (system component: "
    "'nginx -t && systemctl reload nginx', ...). Without it they are only printed.",
)
@thaw_options
@pass_app
def restore(
    app: App,
    /,
    args: tuple[str, ...],
    target: str | None,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    overwrite: str,
    verify: bool,
    snapshot_ref: str,
    target_root: str | None,
    dry_run: bool,
    force: bool,
    no_safety_snapshot: bool,
    install_packages: bool,
    yes: bool,
    db_host: str | None,
    db_port: int | None,
    db_user: str | None,
    db_name: str | None,
    db_password_env: str | None,
    redis_host: str | None,
    redis_port: int | None,
    sets: tuple[str, ...],
    no_health_checks: bool,
    reload_services: bool,
    **thaw: Any,
) -> None:
    """Restore files into a folder (--target), or components / 'all' to their places. Data packs in an
    archive storage class are found first: --thaw requests them (and --wait waits for them)."""
    cold = from_params(thaw)
    if target is not None:
        if len(args) != 1:
            raise UsageError("with --target, give exactly one SNAPSHOT[:SUBPATH]")
        _restore_files(app, args[0], target, includes, excludes, overwrite, verify, cold)
        return
    from safehold.operations.restore.profile import RestoreRequest

    db = {
        "host": db_host,
        "port": db_port,
        "user": db_user,
        "database": db_name,
        "password": {"env": db_password_env} if db_password_env else None,
    }
    req = RestoreRequest(
        components=list(args),
        target_root=target_root,
        dry_run=dry_run,
        force=force,
        safety_snapshot=not no_safety_snapshot,
        install_packages=install_packages,
        db={k: v for k, v in db.items() if v is not None},
        health_checks=not no_health_checks,
        redis={k: v for k, v in {"host": redis_host, "port": redis_port}.items() if v is not None},
        overrides=_parse_sets(sets),
        reload_services=reload_services,
    )
    if reload_services and target_root:
        raise UsageError(
            "--reload-services reloads the services of this machine; a restore below --target-root does "
            "not feed them",
            hint="Leave out --reload-services, or restore in place.",
        )
    if "all" in req.components and len(req.components) > 1:
        raise UsageError("'all' cannot be combined with component names")
    _restore_components(app, req, snapshot_ref, yes, cold)


def _parse_sets(sets: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``COMPONENT.KEY=VALUE`` pairs -> {component: {key: value}}; VALUE is JSON when it parses as JSON."""
    import json

    out: dict[str, dict[str, object]] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        comp, dot, name = key.partition(".")
        if not sep or not dot or not comp or not name:
            raise UsageError(f"--set takes COMPONENT.KEY=VALUE, not {item!r}")
        try:
            value: object = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(comp, {})[name] = value
    return out


def _restore_files(
    app: App,
    arg: str,
    target: str,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    overwrite: str,
    verify: bool,
    cold: ThawOptions,
) -> None:
    snap_ref, sub = split_snapshot_arg(arg)
    repo = app.open_repo()
    snap = repo.find_snapshot(snap_ref)
    prepare(repo, lambda: packs_for(repo, snap, [sub]), cold, app.info)
    opts = RestoreOptions(
        snapshot=snap.id,
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


def _restore_components(app: App, req: object, snapshot_ref: str, yes: bool, cold: ThawOptions) -> None:
    from safehold.operations.restore.latest import LatestChoice, choose_latest
    from safehold.operations.restore.profile import (
        RestoreRequest,
        ServerRestoreResult,
        execute_restore,
        next_steps,
        plan_restore,
        raise_refusals,
        resolve_config,
        safety_components,
    )

    assert isinstance(req, RestoreRequest)
    repo = app.open_repo()
    choice: LatestChoice | None = None
    if snapshot_ref == "latest":
        choice = choose_latest(repo, req.components)
        snap = choice.snapshot
    else:
        snap = repo.find_snapshot(snapshot_ref)
    from safehold.operations.backup.profile import CONFIG_FILE  # the schema: only a component restore's

    wanted = None if "all" in req.components else [*req.components, CONFIG_FILE]
    prepare(repo, lambda: packs_for(repo, snap, wanted), cold, app.info)  # before anything is read or planned
    config = resolve_config(repo, snap, app.config())
    items = plan_restore(repo, snap, config, req)
    safety = safety_components(config, items, req)
    lines = [f"Restore plan for snapshot {snap.short_id} ({snap.time[:19]}, host {snap.hostname}):"]
    if choice is not None:
        lines += choice.lines()
    for i, item in enumerate(items, 1):
        lines.append(f"{i}. {item.name} ({item.kind})")
        if item.refused:
            lines.append(f"     {item.refused}")
        else:
            lines += [f"     {a}" for a in item.plan.actions] or ["     (nothing to do)"]
        lines += [f"     warning: {w}" for w in item.plan.warnings]
    steps = next_steps(items)
    if steps:
        how = "run after the restore (--reload-services)" if req.reload_services else "to run afterwards"
        lines.append(f"Reload steps {how}:" + "".join(f"\n     {s}" for s in steps))
        if not req.reload_services:
            lines.append("     (printed only; --reload-services runs them)")
    if safety:
        lines.append(
            f"A safety snapshot of what will be replaced ({', '.join(safety)}) "
            f"{'would be' if req.dry_run else 'is'} taken first (tag 'safety')."
        )
    extra = {"latest": choice.as_dict() if choice else None, "safety_snapshot_of": safety}
    if req.dry_run:
        app.emit(ServerRestoreResult(snap, items).as_dict() | extra | {"dry_run": True}, "\n".join(lines))
        return
    if not app.json:
        click.echo("\n".join(lines))
    raise_refusals(items)  # before the question: a restore that cannot finish does not start
    if sys.stdin.isatty() and not yes and not click.confirm("Proceed?", default=False):
        raise UsageError("restore cancelled")
    result = execute_restore(repo, snap, config, req, items, progress=app.progress())
    out = []
    if result.safety_snapshot:
        out.append(f"safety snapshot {result.safety_snapshot[:8]} saved")
    for item in items:
        status = "FAILED: " + item.error if item.error else "restored"
        out.append(f"{item.name}: {status}")
        if item.result:
            out += [f"  warning: {w}" for w in item.result.warnings]
    for r in result.reloads:
        out.append(f"reload '{r.command}': {'ok' if r.ok else 'FAILED: ' + r.message}")
    if not req.reload_services and next_steps(items):
        out.append("next: run " + "; ".join(f"'{s}'" for s in next_steps(items)) + " (or --reload-services)")
    from safehold.health import result_lines

    out += [f"health check {line}" for line in result_lines(result.health, result.skipped_checks)]
    app.emit(result.as_dict() | extra, "\n".join(out))
    failed_reloads = [r.command for r in result.reloads if not r.ok]
    if not result.restored:
        bad = [i.name for i in items if i.error] + [f"health:{name}" for name in result.failed_checks]
        bad += [f"reload:{c}" for c in failed_reloads]
        raise RestoreFailed(
            f"restore incomplete: {', '.join(bad)}",
            hint="Fix the cause shown above and run the same command again; completed parts are kept.",
        )
    if failed_reloads:
        raise RestoreFailed(
            "restored; reload step(s) failed: "
            + "; ".join(f"'{c}'" for c in failed_reloads)
            + (f" (and health check {', '.join(result.failed_checks)})" if result.failed_checks else ""),
            hint="Everything was restored. Fix what the step's output above names (a configuration "
            "test, a unit), then run the step by hand.",
        )
    if result.failed_checks:
        raise HealthCheckFailed(
            f"restored; health check {', '.join(result.failed_checks)} failed",
            hint="Every component was restored. The check's line above says what it saw (a service not "
            "started yet, a certificate to renew...); fix that and run 'safehold verify-system'.",
        )


COMMANDS = [restore]
