"""Writing the repository's ``bootstrap/`` from the commands that create or fill a repository (init,
backup), and saying what happened: a failure is a warning, never an error."""

from __future__ import annotations

from safehold.backends.base import Backend
from safehold.cli.app import App
from safehold.operations.bootstrap import BootstrapResult, ensure_bootstrap


def write_bootstrap(app: App, backend: Backend) -> BootstrapResult:
    """Write or refresh the repository's ``bootstrap/`` (see :mod:`safehold.operations.bootstrap`); a
    failure is a warning, never an error: the repository and its snapshots are fine without it."""
    result = ensure_bootstrap(backend)
    where = backend.properties.location
    if result.action == "failed":
        app.warn(f"warning: {result.message} (in {where}); a new host cannot install safehold from it")
        for hint in result.warnings:
            app.warn(f"hint: {hint}")
    elif result.action == "written":
        app.info(f"{result.message} (in {where})")
    return result
