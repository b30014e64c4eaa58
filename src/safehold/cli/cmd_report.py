"""``safehold report --html FILE``: a self-contained page about the backups, for people."""

from __future__ import annotations

import socket

import click

from safehold.cli.app import App, pass_app
from safehold.errors import UsageError


@click.command()
@click.option(
    "--html",
    "html_file",
    metavar="FILE",
    help="Write the report to FILE (one self-contained HTML page).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="Measure the objectives for HOST (repeatable; default: this host).",
)
@click.option("--all-hosts", is_flag=True, help="Measure the objectives for every host with snapshots.")
@pass_app
def report(app: App, html_file: str | None, hosts: tuple[str, ...], all_hosts: bool) -> None:
    """Write an HTML report: the objectives as 'status' measures them, the snapshots on a timeline per
    host and profile, repository growth and data added per backup, backup and drill durations against the
    RTO, snapshot age against the RPO, the last check, and the table behind each plot. No external assets:
    open it anywhere, mail it."""
    from safehold.config.schema import Config
    from safehold.fsutil import atomic_write
    from safehold.operations.observe.report import render_report

    if not html_file:
        raise UsageError(
            "say where the report goes: --html FILE", hint="For example: safehold report --html report.html"
        )
    if not html_file.endswith((".html", ".htm")):
        raise UsageError(f"{html_file}: give the report a name ending in .html")
    config = app.config() or Config.model_validate({"repository": {"url": app.repo_url or "-"}})
    repo = app.open_repo()
    wanted = None if all_hosts else (list(hosts) or [socket.gethostname()])
    page, st = render_report(repo, config, wanted)
    try:
        atomic_write(html_file, page.encode(), mode=0o644)
    except OSError as exc:
        raise UsageError(
            f"cannot write {html_file}: {exc.strerror}", hint="Check the folder exists and is writable."
        ) from None
    breached = len(st.breached)
    app.emit(
        {"file": html_file, "bytes": len(page.encode()), "objectives_breached": breached},
        f"wrote {html_file} ({len(page.encode()) // 1024} KiB); {breached} objective(s) breached",
    )


COMMANDS = [report]
