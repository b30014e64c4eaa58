"""The configured health checks, run by a drill against what it restored (the sandbox), not the live system.

* A check of a component's data (``mysql``/``postgresql``/``sqlite``/``redis`` naming a ``component``)
  runs while that component's copy is live: its kind's ``verify`` hands the settings pointing at the
  scratch database, scratch redis-server or restored database file to ``Sandbox.loaded``
  (:meth:`DrillHealth.loaded`).
* A check of a file or folder (``writable``, ``tls``/``crontab``/``sqlite`` with a ``path``; a
  ``crontab`` of a ``user`` reads ``/var/spool/cron/crontabs/USER``) runs after every component was
  verified, on the restored copy of that path (:meth:`DrillHealth.run_paths`): the live path is
  resolved one name at a time in the live name space, each name through the components'
  ``sandbox_path``, so that a restored symlink (``live/`` into ``archive/``, Laravel's ``public/storage``)
  is followed to the restored copy of its target and never to the live system; a location that still
  leads outside the sandbox is refused. Restored content is untrusted.
* The others are skipped, each with its reason: HTTP, TCP, supervisor, systemd, commands and TLS of a
  host check the live system; a log's freshness is the live log's; a ``dsn`` names a live database.

One :class:`~safehold.operations.observe.results.StepResult` per configured check (``skipped`` for those that
do not apply); a failed check fails the drill (exit 4 when every component passed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safehold.config.healthchecks import HealthCheck
from safehold.health import HealthResult, run_one
from safehold.health.sandbox import live_only, live_path
from safehold.operations.observe.results import StepResult
from safehold.sources.base import Source
from safehold.sources.sandboxpath import OutsideSandbox, Where, locate


def make_where(root: Path, sources: Mapping[str, Source], ok: set[str]) -> Where:
    """Live path -> its restored copy in the sandbox: through each verified component's ``sandbox_path``
    (``root / name / ...``); where several hold it, the first whose copy exists."""

    def where(path: str) -> Path | None:
        found = [
            root / name / rel
            for name, src in sources.items()
            if name in ok and (rel := src.sandbox_path(path)) is not None
        ]
        return next((p for p in found if os.path.lexists(p)), found[0] if found else None)

    return where


def _step(check: HealthCheck, result: HealthResult | None, skipped: str | None = None) -> StepResult:
    if result is None:
        return StepResult(
            name=check.name, kind=check.kind, ok=True, seconds=0, message=skipped or "", skipped=True
        )
    return StepResult(
        name=check.name, kind=check.kind, ok=result.ok, seconds=result.seconds, message=result.message
    )


class DrillHealth:
    """The health checks of one drill: ``loaded`` for the component checks while each copy is live,
    :meth:`run_paths` for the file checks afterwards, :meth:`steps` for the lines in order."""

    def __init__(self, checks: list[HealthCheck], components: list[str]) -> None:
        self.checks = checks
        self.components = set(components)
        self.done: dict[int, StepResult] = {}
        self.skipped: dict[int, str] = {}

    def loaded(self, component: str) -> Callable[[dict[str, Any]], None]:
        """The ``Sandbox.loaded`` of ``component``: runs the checks naming it against ``settings``."""

        def run(settings: dict[str, Any]) -> None:
            targets = {component: settings}
            for i, c in enumerate(self.checks):
                if c.component == component and c.dsn is None and i not in self.done:
                    self.done[i] = _step(c, run_one(c, targets))

        return run

    def run_paths(self, root: Path, sources: Mapping[str, Source], ok: set[str], where: Where) -> None:
        """Run the file checks on the restored copies (``sources``: the drilled components by name, whose
        sandbox folder is ``root / name``; ``ok``: those that verified; ``where``: :func:`make_where`)."""
        for i, c in enumerate(self.checks):
            live = live_path(c)
            if i in self.done or live is None:
                continue
            holders = [n for n, src in sources.items() if src.sandbox_path(live) is not None]
            if not holders or not set(holders) & ok:
                self.skipped[i] = (
                    f"{live} is held by no component of the drilled profile"
                    if not holders
                    else f"component {holders[0]} did not restore (its line says why)"
                )
                continue
            try:
                loc = locate(live, where, root)
            except OutsideSandbox as exc:
                self.done[i] = StepResult(
                    name=c.name, kind=c.kind, ok=False, seconds=0, message=str(exc)[:300]
                )
                continue
            except OSError as exc:
                message = f"{live}: {exc.strerror or exc}"
                self.done[i] = StepResult(name=c.name, kind=c.kind, ok=False, seconds=0, message=message)
                continue
            moved = c.model_copy(update={"path": str(loc), "user": None})
            result = run_one(moved, {})
            result.message = result.message.replace(str(loc), f"{live} (restored)")
            self.done[i] = _step(c, result)

    def steps(self, profile: str | None) -> list[StepResult]:
        """One line per configured check, in the configuration's order."""
        out = []
        for i, c in enumerate(self.checks):
            if i in self.done:
                out.append(self.done[i])
            else:
                out.append(_step(c, None, self._why_not(i, c, profile)))
        return out

    def _why_not(self, i: int, c: HealthCheck, profile: str | None) -> str:
        if i in self.skipped:
            return self.skipped[i]
        why = live_only(c)
        if why is not None:
            return why
        if c.component is not None and c.component not in self.components:
            return f"component {c.component} is not part of the drilled profile {profile}"
        if c.component is not None:
            return f"component {c.component} was not loaded in the sandbox (its line says why)"
        return "does not apply to a sandbox"
