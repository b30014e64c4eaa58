"""What a health check says about a restore in a drill's sandbox (:mod:`safehold.operations.observe.drill_health`):
a check of a component's data runs against the component's scratch copy, a check of a file or folder
against the restored copy of its path, and the others check the live system (the reason says why)."""

from __future__ import annotations

import os

from safehold.config.healthchecks import HealthCheck

#: Why a kind of check says nothing about a restore in a sandbox.
LIVE_ONLY = {
    "http": "requests the live site over HTTP",
    "tcp": "connects to a live port",
    "supervisor": "asks the live supervisord",
    "systemd": "asks the live systemd",
    "command": "runs a command on the live system",
    "log": "a log's freshness is the live log's (a restored copy keeps its time of the backup)",
}
#: Where a user's crontab lives (Debian): what a crontab check of ``user`` reads in a drill.
CRONTABS = "/var/spool/cron/crontabs"


def live_path(check: HealthCheck) -> str | None:
    """The live path a file check reads (its restored copy is checked), None for the other checks."""
    if check.kind in ("writable", "tls", "crontab", "sqlite") and check.path is not None:
        return os.path.normpath(check.path)
    if check.kind == "crontab" and check.user is not None:
        return f"{CRONTABS}/{check.user}"
    return None


def live_only(check: HealthCheck) -> str | None:
    """Why ``check`` can only check the live system, None when it can check a restored copy."""
    if check.kind in LIVE_ONLY:
        return LIVE_ONLY[check.kind]
    if check.kind == "tls" and check.host is not None:
        return f"connects to the live server {check.host}:{check.port or 443}"
    if check.dsn is not None:
        return "names a live database by URL (dsn), not a component the drill restored"
    return None
