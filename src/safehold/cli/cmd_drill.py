"""``safehold drill``: restore a snapshot into a sandbox, prove every component, time it against the RTO."""

from __future__ import annotations

from pathlib import Path

import click

from safehold.cli.app import App, pass_app
from safehold.errors import HealthCheckFailed, ObjectiveBreached, SafeholdError
from safehold.operations.observe.results import StepResult
from safehold.operations.observe.status import human_duration


class DrillFailed(SafeholdError):
    default_hint = (
        "The lines marked FAILED say which component did not restore as recorded; that backup cannot be "
        "relied on. Fix the cause, take a new backup and drill it again."
    )


def _line(s: StepResult) -> str:
    state = "skipped" if s.skipped else "ok" if s.ok else "FAILED"
    what = s.name + (f" ({s.kind})" if s.kind else "")
    line = f"{state:7} {what:28} {human_duration(s.seconds):>7}  {s.message}"
    return line + (f"\n{'':8}hint: {s.hint}" if s.hint and not s.ok else "")


@click.command()
@click.option("--profile", help="Drill the newest snapshot of this profile (default: [drill] profile, then "
              "the default profile).")  # fmt: skip
@click.option(
    "--snapshot", "snapshot_ref", default="latest", show_default=True, help="The snapshot to drill."
)
@click.option("--keep", is_flag=True, help="Keep the sandbox and the scratch databases for inspection.")
@click.option(
    "--cleanup", is_flag=True, help="Only remove what killed (and --keep) drills left behind, then exit."
)
@click.option("--db-host", help="Load database dumps into scratch databases on this server instead.")
@click.option("--db-port", type=int, help="Port of that server.")
@pass_app
def drill(
    app: App,
    profile: str | None,
    snapshot_ref: str,
    keep: bool,
    cleanup: bool,
    db_host: str | None,
    db_port: int | None,
) -> None:
    """Restore a snapshot into a sandbox and prove it: files compared byte for byte with their modes and
    links, each database dump loaded into a scratch database and compared with the row counts and
    checksums recorded at backup time, Redis loaded by a scratch redis-server, git bundles cloned, SaaS
    exports parsed. Then the configured health checks that make sense against the
    sandbox (databases, Redis, files; the others say why they were skipped). One line per component and
    check, the total against the RTO; the result is recorded in the repository for 'status'. Exit status
    1 when a component fails (or cannot be tested: the hint says why), 4 when every component passed and
    a health check failed, 5 when the drill took longer than the RTO."""
    from safehold.config.schema import Config
    from safehold.operations.observe.drill import DrillRequest, cleanup_leftovers, run_drill

    local = app.config()
    if cleanup:
        base = Path((local or Config.model_validate({"repository": {"url": "-"}})).drill.sandbox)
        done = cleanup_leftovers(base, kept=True)
        app.emit({"cleaned": done}, "\n".join(done) or f"nothing left behind in {base}")
        return
    repo = app.open_repo()
    req = DrillRequest(profile=profile, snapshot=snapshot_ref, keep=keep, db_host=db_host, db_port=db_port)

    def show(step: StepResult) -> None:
        if not app.json:
            click.echo(_line(step))

    def show_check(check: StepResult) -> None:
        if not app.json:
            if not shown:
                click.echo("health checks against the sandbox:")
                shown.append(True)
            click.echo(_line(check))

    shown: list[bool] = []

    result = run_drill(repo, local, req, on_step=show, log=app.info, on_health=show_check)
    for c in result.cleaned:
        app.warn(f"note: {c}")
    rto = (
        f" (RTO {human_duration(result.rto_seconds)}: {'met' if result.within_rto else 'EXCEEDED'})"
        if result.rto_seconds
        else ""
    )
    text = (
        f"drill of snapshot {result.snapshot.short_id} ({result.snapshot.time[:19]}, host {result.snapshot.hostname}, "
        f"profile {result.profile}): {'passed' if result.ok else 'FAILED'} in {human_duration(result.seconds)}{rto}"
    )
    if result.sandbox:
        text += f"\nsandbox kept: {result.sandbox} (scratch databases kept too; 'safehold drill --cleanup' removes them)"
    app.emit(result.as_dict(), text)
    if not result.components_ok:
        failed = [s for s in result.steps if not s.ok]
        hint = next((s.hint for s in failed if s.hint), None)  # not the backup's fault: say what to fix
        raise DrillFailed(f"drill failed: {', '.join(s.name for s in failed)}", hint=hint)
    if not result.ok:
        raise HealthCheckFailed(
            "drill: every component restored and verified; health check(s) failed against the sandbox: "
            + ", ".join(h.name for h in result.health if not h.ok),
            hint="The lines 'health check ... FAILED' say what the restored copy lacks.",
        )
    if result.within_rto is False:
        raise ObjectiveBreached(
            f"the drill took {human_duration(result.seconds)}, longer than the RTO of {human_duration(result.rto_seconds)}",
            hint="The per-component times above show where it went.",
        )


COMMANDS = [drill]
