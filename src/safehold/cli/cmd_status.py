"""``safehold status``: are the objectives met? Exit 5 when one is breached, so monitoring can run it."""

from __future__ import annotations

import socket

import click

from safehold.cli.app import App, pass_app
from safehold.engine.util import human_bytes
from safehold.errors import ObjectiveBreached
from safehold.operations.observe.status import Status, human_duration


def _text(st: Status) -> str:
    lines = [f"status at {st.time} for host {', '.join(st.hosts) or '(none)'}", ""]
    lines.append("objectives:")
    for o in st.objectives:
        where = "/".join(x for x in (o.host, o.profile) if x) or "repository"
        lines.append(f"  {'ok' if o.ok else 'BREACHED':8} {o.name:5} {where:24} {o.message}")
    if not st.objectives:
        lines.append("  (none configured: set [objectives] rpo and rto)")
    lines += ["", "snapshots (host/profile: newest complete, age, RPO, partial since):"]
    for p in st.profiles:
        newest = p.newest_complete
        lines.append(
            f"  {p.host + '/' + (p.profile or '(paths)'):30} "
            f"{newest.id[:8] + ' ' + newest.time[:19] if newest else 'none':29} "
            f"{human_duration(newest.age_seconds if newest else None):>8} "
            f"RPO {human_duration(p.rpo_seconds):>7}  {len(p.partial_since)} partial  ({p.snapshots} in all)"
        )
    for d in st.drills:
        if d.last is None:
            lines.append(f"drill {d.host}/{d.profile or '(paths)'}: none recorded")
        else:
            lines.append(
                f"drill {d.host}/{d.profile or '(paths)'}: {'passed' if d.last['ok'] else 'FAILED'} "
                f"{d.last['time'][:19]} in {human_duration(d.last['seconds'])} "
                f"(snapshot {str(d.last.get('snapshot_id') or '')[:8]}, RTO {human_duration(d.rto_seconds)})"
            )
    c = st.last_check
    lines.append(
        f"last check: {'passed' if c['ok'] else 'FAILED'} {c['time'][:19]}"
        if c
        else "last check: none recorded"
    )
    r = st.repository
    ratio = f"{r.dedup_ratio:g}x" if r.dedup_ratio is not None else "-"
    lines.append(
        f"repository: {human_bytes(r.size_bytes)} in {r.files} files ({human_bytes(r.data_bytes)} of data), "
        f"{r.snapshots} snapshots holding {human_bytes(r.logical_bytes)} (deduplication {ratio}); "
        f"{human_bytes(r.added_30d_bytes)} added by {r.added_30d_backups} backup(s) in 30 days"
    )
    lines.append(f"stale locks: {len(st.stale_locks) or 'none'}")
    if not st.notifications:
        lines.append("notifications: no failed delivery")
    for n in st.notifications:
        lines.append(
            f"notifications: FAILED to {n['target']}: {n['failures']} time(s) in a row since "
            f"{str(n['failing_since'])[:19]}, last {n['event']} at {str(n['last'])[:19]}: {n['message']}"
        )
    return "\n".join(lines)


@click.command()
@click.option("--host", "hosts", multiple=True, metavar="HOST", help="Measure the objectives for HOST's "
              "snapshots (repeatable; default: this host).")  # fmt: skip
@click.option("--all-hosts", is_flag=True, help="Measure the objectives for every host with snapshots.")
@pass_app
def status(app: App, hosts: tuple[str, ...], all_hosts: bool) -> None:
    """The newest complete snapshot of each host and profile against the RPO, the newest drill against
    the RTO, the last check, the repository's size, deduplication and growth, stale locks, notification
    targets whose last delivery failed. Exit status 5 when an objective is breached. Rewrites the [status]
    prometheus_textfile and sends a breach's notification when the breach is new."""
    from safehold.config.schema import Config
    from safehold.operations.observe import alerts
    from safehold.operations.observe.status import compute_status

    config = app.config() or Config.model_validate({"repository": {"url": app.repo_url or "-"}})
    repo = app.open_repo()
    wanted = None if all_hosts else (list(hosts) or [socket.gethostname()])
    st = compute_status(repo, config, hosts=wanted)
    for w in st.warnings:
        app.warn(f"warning: {w}")
    st.notifications = alerts.failing_targets()
    app.measured = st  # the textfile and breach alerts reuse it after the command (cli.aftermath)
    app.emit(st.as_dict(), _text(st))
    if st.breached:
        names = ", ".join(
            f"{o.name} ({'/'.join(x for x in (o.host, o.profile) if x) or 'repository'})" for o in st.breached
        )
        raise ObjectiveBreached(f"objective(s) not met: {names}")


COMMANDS = [status]
