"""``safehold schedule install|status|remove``: the jobs that run safehold unattended (see
:mod:`safehold.operations.schedule.jobs` for what they are and :mod:`safehold.operations.schedule.install`
for how they are written, shown and removed)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import click

from safehold.cli.app import App, pass_app
from safehold.config.schema import Config
from safehold.errors import SafeholdError, UsageError
from safehold.operations.observe import audit
from safehold.operations.schedule.install import (
    CRON,
    SYSTEMD,
    Systemctl,
    install,
    job_status,
    read_manifest,
    remove,
)
from safehold.operations.schedule.jobs import CronTools, Invocation, plan_jobs, render_cron, render_systemd

_ROOT = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Install below this folder instead of / (an image being built, a test); systemd units are "
    "then enabled with 'systemctl --root', nothing is started.",
)


def _program() -> tuple[str, ...]:
    """How the jobs start this safehold: the ``safehold`` script that runs now (a symlink such as
    /usr/local/bin/safehold stays as it is, so that an upgraded virtualenv is used), the one beside this
    Python, or this Python with ``-m safehold``."""
    me = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if me is not None and me.name == "safehold" and me.is_absolute() and os.access(me, os.X_OK):
        return (str(me),)
    beside = Path(sys.executable).parent / "safehold"
    if beside.is_file() and os.access(beside, os.X_OK):
        return (str(beside),)
    return (sys.executable, "-m", "safehold")


def _config_path(app: App) -> Path:
    from safehold.config.loader import find_config

    explicit = app.config_path or os.environ.get("SAFEHOLD_CONFIG")
    path = find_config(Path(explicit) if explicit else None)
    if path is None:
        raise UsageError("no configuration file found", hint="Pass --config FILE or set SAFEHOLD_CONFIG.")
    return path.absolute()


def _password_options(app: App, config: Config) -> tuple[str, ...]:
    """What the jobs pass so that they can open the repository with nobody there: nothing when the
    configuration names the passphrase, ``--password-file`` when it came from one; otherwise refused
    (a passphrase itself never goes into a unit file or a cron line)."""
    if config.repository.password is not None:
        return ()
    pw_file = app.password_file or os.environ.get("SAFEHOLD_PASSWORD_FILE")
    if pw_file:
        return ("--password-file", str(Path(pw_file).absolute()))
    raise UsageError(
        "the scheduled jobs would have no passphrase: the configuration does not name one",
        hint='Add it to the configuration, e.g. [repository] password = { file = "/root/.safehold-pass" } '
        "(or install with --password-file FILE); a passphrase in the environment or a command line is "
        "never copied into a unit file.",
    )


def _mode(systemd: bool, cron: bool) -> str:
    if systemd and cron:
        raise UsageError("give --systemd or --cron, not both")
    if systemd or cron:
        return SYSTEMD if systemd else CRON
    return SYSTEMD if Path("/run/systemd/system").is_dir() else CRON


def _job_lines(jobs: list[dict[str, Any]]) -> list[str]:
    return [f"  {j['name']:<20} {j['calendar']:<32} safehold {' '.join(j['args'])}" for j in jobs]


@click.group()
def schedule() -> None:
    """Run backups, checks, drills and prunes unattended: systemd timers, or cron where there is no
    systemd. The calendars are [schedule] (and drill.schedule) in the configuration."""


@schedule.command("install")
@_ROOT
@click.option("--systemd", is_flag=True, help="Write systemd timers (the default where systemd runs).")
@click.option("--cron", is_flag=True, help="Write /etc/cron.d/safehold (the default without systemd).")
@click.option("-n", "--dry-run", is_flag=True, help="Print the files that would be written; write nothing.")
@pass_app
def install_cmd(app: App, root: Path, systemd: bool, cron: bool, dry_run: bool) -> None:
    """Write the jobs the configuration asks for (replacing an earlier 'schedule install'), and enable them.

    Backups of each profile of [schedule] backups (default: the default profile, daily), 'check
    --read-data-subset' weekly, a drill monthly (drill.schedule), 'forget --prune' daily when a profile
    has a retention. Jobs never overlap, start up to [schedule] randomized_delay late, run at low CPU and
    idle I/O priority, and notify like any command."""
    config = app.config(required=True)
    assert config is not None
    mode = _mode(systemd, cron)
    config_path = _config_path(app)
    options = (
        "--config",
        str(config_path),
        *_password_options(app, config),
        "--lock-wait",
        config.schedule.lock_wait,
    )
    inv = Invocation(_program(), options)
    plan = plan_jobs(config)
    s = config.schedule
    if mode == SYSTEMD:
        files = render_systemd(plan.jobs, inv, nice=s.nice, delay=s.randomized_delay)
    else:
        import shutil

        tools = CronTools(shutil.which("nice"), shutil.which("ionice"))
        files = render_cron(plan.jobs, inv, nice=s.nice, delay=s.randomized_delay, tools=tools)
    jobs = [j.as_dict() for j in plan.jobs]
    root = root.absolute()
    if dry_run:
        text = "\n".join(f"# {root / rel}\n{body}" for rel, body in sorted(files.items()))
        app.emit(
            {"mode": mode, "root": str(root), "jobs": jobs, "contents": files, "notes": plan.notes}, text
        )
        return
    change = install(root, mode, files, plan, inv, config_path)
    kind = "systemd timers" if mode == SYSTEMD else "cron lines"
    lines = [f"installed {len(jobs)} job(s) as {kind} below {root}:", *_job_lines(jobs)]
    lines += [f"  {note}" for note in plan.notes]
    lines += [f"wrote {root / rel}" for rel in change.written] + [n for n in change.notes if n]
    app.emit(
        {"mode": mode, "root": str(root), "jobs": jobs, "notes": plan.notes, **change.as_dict()},
        "\n".join(lines),
    )


@schedule.command("status")
@_ROOT
@pass_app
def status_cmd(app: App, root: Path) -> None:
    """The installed jobs: calendar, next run (from systemd when it runs the timers, else computed), and
    the last run of each from the audit log (time, result, exit code). Exits 1 when a job's last run did
    not succeed (failed, partial or interrupted), so that a monitor can run it."""
    root = root.absolute()
    manifest = read_manifest(root)
    if manifest is None:
        lines = [f"no schedule installed below {root}"]
        planned: list[dict[str, Any]] = []
        config = app.config()
        if config is not None:
            planned = [j.as_dict() for j in plan_jobs(config).jobs]
            lines += ["'safehold schedule install' would install:", *_job_lines(planned)]
        app.emit({"installed": False, "root": str(root), "planned": planned}, "\n".join(lines))
        return
    systemctl = Systemctl(root) if manifest.mode == SYSTEMD else None
    now = dt.datetime.now().astimezone()
    records = audit.read_local()
    found = job_status(manifest, records, systemctl, now)
    lines = [
        f"{manifest.mode} schedule below {root}, installed {manifest.installed}, configuration {manifest.config}"
    ]
    for st in found:
        nxt = _when(st.next_run) + ("" if st.next_from == "systemd" else " (+ random delay)")
        if st.last:
            snap = ",".join(str(s)[:8] for s in st.last.get("snapshot_ids") or [])
            last = f"{_when(st.last.get('time'))} {st.last.get('result')} (exit {st.last.get('exit_code')})"
            last += f" snapshot {snap}" if snap else ""
        else:
            last = "never (no audit record of this job)"
        lines += [f"  {st.name:<20} {st.calendar}", f"  {'':<20} next: {nxt}", f"  {'':<20} last: {last}"]
    result = {"installed": True, "root": str(root), "mode": manifest.mode, "config": manifest.config,
              "installed_at": manifest.installed, "jobs": [vars(st) for st in found]}  # fmt: skip
    app.emit(result, "\n".join(lines))
    failed = [st for st in found if st.last and st.last.get("exit_code") != 0]
    if failed:
        runs = ", ".join(
            f"{st.name} ({st.last.get('result')}, exit {st.last.get('exit_code')})"
            for st in failed
            if st.last
        )
        raise SafeholdError(
            f"the last run of {len(failed)} scheduled job(s) did not succeed: {runs}",
            hint="'safehold log' shows the runs and their errors; fix the cause, then run the job's command "
            "(in the installed cron file or systemd unit) by hand to see it succeed.",
        )


def _when(iso: object) -> str:
    if not iso:
        return "-"
    try:
        return dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    except ValueError:
        return str(iso)


@schedule.command("remove")
@_ROOT
@pass_app
def remove_cmd(app: App, root: Path) -> None:
    """Disable and remove exactly what 'schedule install' wrote (its manifest lists it); a file changed
    since is left in place and named (exit 1)."""
    root = root.absolute()
    if read_manifest(root) is None:
        app.emit({"removed": [], "kept": []}, f"no schedule installed below {root}: nothing to remove")
        return
    change = remove(root)
    lines = [f"removed {root / rel}" for rel in change.removed] + change.notes
    app.emit(change.as_dict(), "\n".join(lines) or "nothing to remove")
    if change.kept:
        raise SafeholdError(
            f"{len(change.kept)} file(s) were changed after 'schedule install' wrote them and are still there",
            hint="Look at them and remove them yourself if they are not needed.",
        )


COMMANDS = [schedule]
