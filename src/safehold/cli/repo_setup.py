"""Making a new repository and keeping its ``bootstrap/``, for the commands that create or fill one
(``init``, ``init --preset``, ``--offsite NAME init``, ``backup --init-offsite``, ``backup``)."""

from __future__ import annotations

from safehold.backends.base import Backend
from safehold.backends.local import LocalBackend
from safehold.backends.wrappers import unwrap
from safehold.cli.app import App
from safehold.engine.format.repository import RepoConfig, Repository
from safehold.operations.backup.bootstrap import BootstrapResult, EarlyWheels, enabled, ensure_bootstrap


def create_repository(
    app: App, backend: Backend, password: str, *, chunker_from: RepoConfig | None = None
) -> tuple[Repository, BootstrapResult]:
    """A new repository at ``backend`` (a local one's missing parent folders are made first: ``init --repo
    /srv/backup/x`` on a fresh host), with its ``bootstrap/`` written."""
    inner = unwrap(backend)
    if isinstance(inner, LocalBackend):
        inner.create_parents()
    early = EarlyWheels() if enabled() else None  # built while the key is derived
    try:
        repo = Repository.init(backend, password, chunker_from=chunker_from)
    except BaseException:
        if early is not None:
            early.cancel()
        raise
    app.repos.append(repo)
    return repo, write_bootstrap(app, backend, early)


def write_bootstrap(app: App, backend: Backend, early: EarlyWheels | None = None) -> BootstrapResult:
    """Write or refresh the repository's ``bootstrap/`` (see :mod:`safehold.operations.backup.bootstrap`); a
    failure is a warning, never an error: the repository and its snapshots are fine without it."""
    result = ensure_bootstrap(backend, early=early)
    where = backend.properties.location
    if result.action == "failed":
        app.warn(f"warning: {result.message} (in {where}); a new host cannot install safehold from it")
        for hint in result.warnings:
            app.warn(f"hint: {hint}")
    elif result.action == "written":
        app.info(f"{result.message} (in {where})")
    return result
