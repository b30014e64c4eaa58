"""``safehold backend validate [URL]``: what a storage location guarantees, checked for real.

Runs :func:`safehold.backends.validate.validate_backend` (a short conformance suite in a scratch
location that is removed afterwards) and prints every finding. Exits 1 when a guarantee safehold relies
on is missing (any finding of level "error"); warnings (e.g. listings that lag) are printed but pass.
Backend options for remote URLs come from the environment (:mod:`safehold.cli.backend_options`).
"""

from __future__ import annotations

import click

from safehold.backends.validate import Finding, validate_backend
from safehold.cli.app import App, pass_app
from safehold.errors import SafeholdError, UsageError


class ValidationFailed(SafeholdError):
    default_hint = (
        "Use another storage for the repository, or fix the storage (permissions, server settings); "
        "every line marked 'error' above is a guarantee safehold needs."
    )


#: What no client-side test can prove; printed so that nobody reads "ok" as more than it is.
NOT_CHECKED = (
    "durability after a crash or power loss, and bit rot at rest "
    "(run 'safehold check --read-data' regularly to detect the latter)"
)

_MARK = {"ok": "ok", "warning": "warn", "error": "FAIL"}


def _line(f: Finding) -> str:
    took = f" ({f.seconds:.2f}s)" if f.seconds else ""
    return f"{_MARK[f.level]:<5} {f.check:<18} {f.message}{took}"


@click.group()
def backend() -> None:
    """Inspect storage locations (see 'backend validate')."""


@backend.command("validate")
@click.argument("url", required=False)
@click.option(
    "--size",
    "size_mib",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Size of the test file in MiB.",
)
@click.option(
    "--list-lag-limit",
    type=click.FloatRange(0.5, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for listings to catch up before calling it an error.",
)
@pass_app
def validate(app: App, url: str | None, size_mib: int, list_lag_limit: float) -> None:
    """Check what the storage at URL (default: --repo) guarantees, in a scratch location.

    Writes, reads, ranges, missing files, atomic visibility during a save, temporary files in listings,
    lock replacement, listing lag and removal are tried for real; the scratch location is removed
    afterwards. No passphrase is needed and no repository is touched.
    """
    url = url or app.repo_url
    if not url:
        raise UsageError("backend validate needs a URL (or --repo / SAFEHOLD_REPOSITORY)")
    be = app.backend(url)
    location = be.properties.location
    app.info(f"validating {location} ...")
    findings = validate_backend(be, size=size_mib << 20, list_lag_limit=list_lag_limit)
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level == "warning"]
    lines = [_line(f) for f in findings]
    if errors:
        lines.append(f"{location} does not guarantee: " + ", ".join(f.check for f in errors) + " (required)")
    if warnings:
        lines.append("caveats (safehold copes): " + ", ".join(f"{f.check}: {f.message}" for f in warnings))
    if not errors:
        lines.append(f"{location} gives every guarantee safehold needs")
    lines.append(f"not verifiable from here: {NOT_CHECKED}")
    app.emit(
        {
            "location": location,
            "ok": not errors,
            "not_checked": NOT_CHECKED,
            "findings": [
                {"check": f.check, "level": f.level, "message": f.message, "seconds": f.seconds}
                for f in findings
            ],
        },
        "\n".join(lines),
    )
    if errors:
        raise ValidationFailed(
            f"{location} failed {len(errors)} check(s): {', '.join(f.check for f in errors)}"
        )


COMMANDS = [backend]
