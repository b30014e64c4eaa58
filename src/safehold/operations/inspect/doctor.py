"""``safehold doctor``: can every part of the configuration actually be backed up right now?

:func:`run_doctor` returns one :class:`Finding` per check, ok or not, and never stops at the first
problem (STYLE.md, "collect findings"). It only reads: no dump is taken, nothing is written anywhere.

Checks:

* **repository** — reachable, and the passphrase opens it (through the ``open_repo`` callable the CLI
  passes, so passphrase lookup stays in one place);
* **secrets** — every secret reference in the configuration resolves (the reference is named, its value
  never shown);
* per component: its kind's :meth:`~safehold.sources.base.Source.preflight` (for a database: tools with
  versions, connect, the databases exist, the backup user's privileges with the exact GRANT statements
  to run; for files: paths exist and are readable; for a SaaS service: a side-effect-free GET with the
  API key; see each kind's package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from safehold.config.schema import Config
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.inspect.permissions import Targets, check_permissions
from safehold.secrets import SecretRef
from safehold.sources.base import Finding, SourceContext

__all__ = ["Finding", "run_doctor"]


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def ok(self, subject: str, check: str, message: str) -> None:
        self.findings.append(Finding(subject, check, True, message))

    def problem(self, subject: str, check: str, message: str, hint: str | None = None, **kw: Any) -> None:
        self.findings.append(Finding(subject, check, False, message, hint, list(kw.get("lines", []))))

    def report(self, subject: str, check: str, ok: bool, message: str, hint: str | None) -> None:
        if ok:
            self.ok(subject, check, message)
        else:
            self.problem(subject, check, message, hint)

    def guard(self, subject: str, check: str, fn: Callable[[], None]) -> None:
        """Run one check; an exception becomes a problem finding (never a crash of the doctor)."""
        try:
            fn()
        except SafeholdError as exc:
            self.problem(subject, check, exc.message, exc.hint or None)
        except Exception as exc:  # a check must not hide the others
            self.problem(subject, check, f"unexpected {type(exc).__name__}: {exc}")


def run_doctor(
    config: Config, open_repo: Callable[[], Repository] | None, targets: Targets | None = None
) -> list[Finding]:
    """Run every check for ``config``; ``open_repo`` opens the main repository (None skips that check);
    ``targets`` names the files whose permissions are checked besides those the configuration names."""
    c = _Collector()
    if open_repo is not None:
        c.guard("repository", "open", lambda: _check_repository(c, open_repo))
    check_permissions(config, targets or Targets(config_file=None), c.report)
    _check_secrets(c, config)
    for name in config.components:
        c.guard(name, "component", lambda name=name: _check_component(c, config, name))  # type: ignore[misc]
    return c.findings


# ------------------------------------------------------------------------------------------ repository
def _check_repository(c: _Collector, open_repo: Callable[[], Repository]) -> None:
    repo = open_repo()
    count = len(list(repo.snapshots()))
    c.ok("repository", "open", f"reachable, the passphrase opens it ({count} snapshot(s))")


# ------------------------------------------------------------------------------------------ secrets
def _secret_refs(value: Any, loc: str) -> Iterator[tuple[str, SecretRef]]:
    """Every SecretRef inside a pydantic model / dict / list, with its dotted location."""
    if isinstance(value, SecretRef):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_refs(getattr(value, name), f"{loc}.{name}" if loc else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_refs(v, f"{loc}.{k}" if loc else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _secret_refs(v, f"{loc}[{i}]")


def _check_secrets(c: _Collector, config: Config) -> None:
    refs = [(loc, ref) for loc, ref in _secret_refs(config, "") if not loc.startswith("components.")]
    for name, comp in config.components.items():
        try:
            refs.extend(_secret_refs(comp.parsed_options(), f"components.{name}"))
        except Exception as exc:  # invalid options are reported by the component's own check
            c.problem(name, "options", f"invalid options: {exc}")
    for loc, ref in refs:
        try:
            ref.resolve()
        except SafeholdError as exc:
            c.problem("secrets", loc, f"{loc} ({ref.describe()}) does not resolve: {exc.message}", exc.hint)
        else:
            c.ok("secrets", loc, f"{loc} ({ref.describe()}) resolves")


# ------------------------------------------------------------------------------------------ components
def _check_component(c: _Collector, config: Config, name: str) -> None:
    """The component's own preflight (each kind knows what it needs: tools, connection, privileges,
    paths, API key)."""
    source = config.build_source(name)
    c.findings.extend(source.preflight(SourceContext()))
