"""``safehold verify-system``: run the configured health checks against this server, one line each."""

from __future__ import annotations

import click

from safehold.cli.app import App, pass_app
from safehold.errors import ConfigError, HealthCheckFailed


@click.command("verify-system")
@click.option("--check", "only", multiple=True, metavar="NAME", help="Run only this check (repeatable).")
@pass_app
def verify_system(app: App, only: tuple[str, ...]) -> None:
    """Run the configuration's [[health_checks]] against this server: the site answers, the database
    exists and holds tables, Redis answers, queue workers run, the scheduler's cron line is there, the
    certificate is valid long enough... One line per check; exit status 4 when any fails."""
    from safehold.health import result_lines, run_health_checks

    config = app.config(required=True)
    assert config is not None
    checks = config.health_checks
    if not checks:
        raise ConfigError(
            "the configuration has no health checks",
            hint="Add [[health_checks]] tables (see 'safehold config reference'); 'safehold init --preset "
            "laravel' proposes them from what it finds on the server.",
        )
    if only:
        unknown = sorted(set(only) - {c.name for c in checks})
        if unknown:
            raise ConfigError(
                f"no health check named {', '.join(unknown)}",
                hint=f"Configured checks: {', '.join(c.name for c in checks)}.",
            )
        checks = [c for c in checks if c.name in only]
    targets = {name: dict(comp.options) for name, comp in config.components.items()}
    results = run_health_checks(checks, targets)
    failed = [r.name for r in results if not r.ok]
    lines = result_lines(results)
    lines.append(f"\n{len(results)} check(s), {len(failed)} failed")
    app.emit({"ok": not failed, "checks": [r.as_dict() for r in results]}, "\n".join(lines))
    if failed:
        raise HealthCheckFailed(f"health check {', '.join(failed)} failed")


COMMANDS = [verify_system]
