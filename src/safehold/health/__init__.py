"""Health checks: does the application work? Run by ``verify-system``, at the end of ``restore all`` and by
drills, from the configuration's ``[[health_checks]]`` (:mod:`safehold.config.healthchecks`).

Each kind is one function in the module of its family (:mod:`.network`: http, tcp, tls;
:mod:`.databases`: mysql, postgresql, sqlite, redis; :mod:`.host`: supervisor, systemd, crontab,
writable, log, command), listed in :data:`CHECKS`. A check returns what it saw or raises
:class:`~safehold.health.base.CheckFailed`; :func:`run_health_checks` turns both (and any other error)
into a :class:`HealthResult` and never raises: a failing check is reported, it never undoes a restore.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from safehold.config.healthchecks import HealthCheck
from safehold.errors import SafeholdError
from safehold.health import databases, host, network
from safehold.health.base import CheckFailed, CheckFunction, HealthResult, Targets

__all__ = ["CHECKS", "HealthResult", "Targets", "below_root", "result_lines", "run_health_checks"]

#: The one list of check kinds (the schema's ``kind`` values).
CHECKS: dict[str, CheckFunction] = {
    "http": network.http,
    "tcp": network.tcp,
    "tls": network.tls,
    "mysql": databases.mysql,
    "postgresql": databases.postgresql,
    "sqlite": databases.sqlite,
    "redis": databases.redis_check,
    "supervisor": host.supervisor,
    "systemd": host.systemd,
    "crontab": host.crontab,
    "writable": host.writable,
    "log": host.log,
    "command": host.command,
}


def run_one(check: HealthCheck, targets: Targets) -> HealthResult:
    t0 = time.monotonic()
    try:
        ok, msg = True, CHECKS[check.kind](check, targets)
    except CheckFailed as exc:
        ok, msg = False, str(exc)
    except SafeholdError as exc:  # a secret that cannot be resolved, an unsafe value
        ok, msg = False, exc.message
    except Exception as exc:  # a check must never take the restore or the report down with it
        ok, msg = False, f"{type(exc).__name__}: {exc}"
    return HealthResult(check.name, check.kind, ok, msg[:300], round(time.monotonic() - t0, 3))


def run_health_checks(checks: list[HealthCheck], targets: Targets) -> list[HealthResult]:
    """Run every check in order; ``targets`` maps component names to their (redirected) options."""
    return [run_one(c, targets) for c in checks]


def below_root(checks: list[HealthCheck], root: str) -> tuple[list[HealthCheck], list[tuple[str, str]]]:
    """The checks that say something about a restore below ``root`` (paths moved below it; databases
    and Redis are redirected through the targets), and the others as (name, reason) to report skipped:
    the site, ports, services, commands, logs and users' crontabs are those of the live system."""
    run: list[HealthCheck] = []
    skipped: list[tuple[str, str]] = []
    for c in checks:
        live = c.kind in ("http", "tcp", "supervisor", "systemd", "command", "log") or (
            c.kind in ("tls", "crontab") and c.path is None
        )
        if live:
            skipped.append((c.name, "checks the live system, not what was restored below the target root"))
        elif c.path is not None:
            run.append(c.model_copy(update={"path": os.path.join(root, c.path.lstrip("/"))}))
        else:
            run.append(c)
    return run, skipped


def result_lines(results: list[HealthResult], skipped: Sequence[tuple[str, str]] = ()) -> list[str]:
    """``NAME: ok|FAILED (what it saw)`` per check, then ``NAME: skipped (why)``."""
    width = max((len(r.name) for r in results), default=0)
    lines = [f"{r.name + ':':{width + 1}} {'ok' if r.ok else 'FAILED'} ({r.message})" for r in results]
    return lines + [f"{name}: skipped ({why})" for name, why in skipped]
