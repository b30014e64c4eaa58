"""``safehold doctor``: can every part of the configuration actually be backed up right now?

:func:`run_doctor` returns one :class:`Finding` per check, ok or not, and never stops at the first
problem (STYLE.md, "collect findings"). No dump is taken; the only thing written is a shared lock file,
taken and released at once, to measure the clock skew.

Checks:

* **repository** — reachable, and the passphrase opens it (through the ``open_repo`` callable the CLI
  passes, so passphrase lookup stays in one place);
* **clock** — the storage's write time of a lock file just written against this host's clock
  (:func:`clock_skew`); beyond :data:`CLOCK_SKEW_LIMIT` seconds leases and ``latest`` misjudge;
* **room** — the pre-backup preflight's figures (:mod:`safehold.operations.backup.preflight`): free space and
  inodes of the repository, the cache and the temporary folder against the estimated need of the
  default profile;
* **permissions** — see :mod:`safehold.operations.inspect.permissions`;
* **secrets** — every secret reference in the configuration resolves (the reference is named, its value
  never shown);
* per component: its kind's :meth:`~safehold.sources.base.Source.preflight` (for a database: tools with
  versions, connect, the databases exist, the backup user's privileges with the exact GRANT statements
  to run; for files: paths exist and are readable; for a SaaS service: a side-effect-free GET with the
  API key; see each kind's package), all components at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from safehold.backends.base import FileType
from safehold.config.schema import Config
from safehold.engine.format.lock import GRACE
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.backup.preflight import component_findings, run_preflight
from safehold.operations.inspect.permissions import Targets, check_permissions
from safehold.secrets import SecretRef
from safehold.sources.base import Finding

__all__ = ["Finding", "clock_skew", "run_doctor"]

#: Seconds of clock difference with the storage that the doctor accepts: lock leases tolerate
#: :data:`~safehold.engine.format.lock.GRACE` seconds between hosts.
CLOCK_SKEW_LIMIT = GRACE


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
    opened: list[Repository] = []
    if open_repo is not None:
        c.guard("repository", "open", lambda: opened.append(_check_repository(c, open_repo)))
    if opened:
        c.guard("repository", "clock", lambda: _check_clock(c, opened[0]))
    c.guard("room", "space", lambda: _check_room(c, config, opened[0] if opened else None))
    check_permissions(config, targets or Targets(config_file=None), c.report)
    _check_secrets(c, config)
    c.findings += component_findings(
        config, list(config.components), timeout=max(config.preflight.timeout, 30.0), doctor=True
    )
    return c.findings


# ------------------------------------------------------------------------------------------ repository
def _check_repository(c: _Collector, open_repo: Callable[[], Repository]) -> Repository:
    repo = open_repo()
    count = len(list(repo.snapshots()))
    c.ok("repository", "open", f"reachable, the passphrase opens it ({count} snapshot(s))")
    return repo


def clock_skew(repo: Repository) -> tuple[float, float] | None:
    """How far the storage's clock is ahead of this host's (seconds; negative: behind), with the
    uncertainty of the measurement: a shared lock file is written (and removed at once) and the write time
    the storage lists for it is compared with the middle of the write. None when the storage lists no
    write times. Raises RepositoryLocked when an exclusive lock is held."""
    before = time.time()
    lock = repo.lock(exclusive=False, operation="doctor")
    after = time.time()
    try:
        written = next(
            (fi.mtime for fi in repo.backend.list(FileType.LOCK) if fi.name == lock.handle.name), None
        )
    finally:
        lock.release()
    if written is None:
        return None
    # +1 s: storages that keep whole seconds (S3's Last-Modified)
    return written - (before + after) / 2, (after - before) / 2 + 1.0


def _check_clock(c: _Collector, repo: Repository) -> None:
    found = clock_skew(repo)
    if found is None:
        c.ok("repository", "clock", "the storage lists no write times: clock skew not measured")
        return
    skew, error = found
    off = max(0.0, abs(skew) - error)
    way = "ahead of" if skew > 0 else "behind"
    if off > CLOCK_SKEW_LIMIT:
        c.problem(
            "repository",
            "clock",
            f"the storage's clock is {abs(skew):.0f} s {way} this host's (more than {CLOCK_SKEW_LIMIT:g} s): "
            "lock leases of other hosts may be misjudged and snapshot times disagree with the storage's",
            "Synchronise the clocks (e.g. 'timedatectl set-ntp true' on this host and the storage server).",
        )
        return
    c.ok("repository", "clock", f"the storage's clock is within {max(off, error):.0f} s of this host's")


def _check_room(c: _Collector, config: Config, repo: Repository | None) -> None:
    report = run_preflight(
        config,
        backend=repo.backend if repo is not None else None,
        snapshots=list(repo.iter_snapshots(errors=[])) if repo is not None else [],
        profile=config.defaults.profile,
        components=[],
        doctor=True,
    )
    for f in report.folders:
        if f.skipped is not None:
            c.ok("room", f.role, f.message)
        elif not f.ok:
            c.problem("room", f.role, f.message + f" ({report.estimate.basis})", f.hint)
        elif f.low:
            c.problem(
                "room",
                f.role,
                f.message,
                "Free space there before a backup runs out of it ('safehold forget --prune' for the "
                "repository).",
            )
        else:
            c.ok("room", f.role, f.message + f" ({report.estimate.basis})")


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
