"""Before a backup: will it fit, and can each component run?

:func:`run_preflight` measures, without writing anything:

* **room** — the free space and inodes of every folder a backup writes to: the repository (local:
  ``statvfs``; SFTP: ``statvfs@openssh.com`` where the server offers it; object storage has no such
  figure and is skipped with that reason), the files cache folder, and the temporary folder (where packs
  for a remote repository wait before their upload). Folders on one file system share its free space:
  their needs are added up.
* **the need** (:func:`estimate_need`) — what the largest of the last :data:`HISTORY` backups of the same
  host and profile (or the same paths) added to the repository, plus ``[preflight] margin`` percent.
  That figure is the files cache's verdict of those runs (only files it did not vouch for were read and
  stored) plus the new part of every dump, after deduplication and compression, as the snapshots
  recorded it; the snapshots' per-component sizes are shown beside it. With no earlier backup to go by,
  one pack (16 MiB) must fit. A folder fails when the need is larger than its free space (or inodes);
  it is *low* when the file system would be fuller than ``warn_usage`` percent afterwards.
* **components** (:func:`component_findings`) — each component's own
  :meth:`~safehold.sources.base.Source.preflight` (server reachable, tools present, credentials resolve),
  all at once in daemon threads within ``[preflight] timeout``. The backup user's hygiene finding
  (:data:`~safehold.sources.checks.BACKUP_USER_CHECK`) is the doctor's business and left out here.

The backup stops (:class:`~safehold.errors.PreflightFailed`, exit code 6) only for room: a component
that cannot run fails within the backup and the rest is still saved, which is worth more than nothing.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from safehold.backends.base import Backend
from safehold.backends.space import Space, local_space, space_of
from safehold.config.defaults import PREFLIGHT, PreflightDefaults
from safehold.engine.backup.filescache import cache_root
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.util import human_bytes
from safehold.errors import PreflightFailed, SafeholdError

if TYPE_CHECKING:  # a backup without a configuration file (no components) imports no pydantic model
    from safehold.config.schema import Config
    from safehold.config.tables import PreflightSettings
    from safehold.sources.base import Finding

#: How many earlier backups of the same host and profile the estimate looks at.
HISTORY = 3
#: One pack: what a backup with no history to go by must at least be able to write.
PACK = 16 * 1024 * 1024
#: Index files, the snapshot, the lock: written by every backup whatever it adds.
METADATA_BYTES = 1024 * 1024
METADATA_INODES = 8


@dataclass
class Estimate:
    """What the backup is expected to add to the repository, and how that was worked out."""

    bytes: int
    inodes: int
    basis: str
    #: per component of the newest earlier run: its recorded size (the dump's or the files' bytes)
    components: dict[str, int] = field(default_factory=dict)


@dataclass
class FolderCheck:
    """One folder a backup writes to, measured against what the backup needs there."""

    role: str  # repository | cache | temporary folder
    path: str
    need: int
    need_inodes: int
    total: int | None = None
    free: int | None = None
    total_inodes: int | None = None
    free_inodes: int | None = None
    #: why the figures are missing (object storage...): not a problem, nothing to check
    skipped: str | None = None
    ok: bool = True
    low: bool = False
    message: str = ""
    hint: str | None = None
    #: the roles of the other folders on the same file system (judged together)
    shared_with: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreflightReport:
    estimate: Estimate
    folders: list[FolderCheck]
    findings: list[Finding]
    seconds: float = 0.0

    @property
    def blocking(self) -> list[FolderCheck]:
        return [f for f in self.folders if not f.ok]

    @property
    def low(self) -> list[FolderCheck]:
        return [f for f in self.folders if f.low]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": asdict(self.estimate),
            "folders": [f.as_dict() for f in self.folders],
            "components": [f.as_dict() for f in self.findings],
            "seconds": round(self.seconds, 3),
        }


# ------------------------------------------------------------------------------------------ the need
def _same_run(s: Snapshot, host: str, profile: str | None, paths: list[str] | None) -> bool:
    if s.hostname != host or "safety" in s.tags:
        return False
    if profile is not None:
        return s.profile == profile
    return s.profile is None and sorted(s.paths) == sorted(paths or [])


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def estimate_need(
    snapshots: list[Snapshot],
    *,
    host: str,
    profile: str | None,
    paths: list[str] | None = None,
    margin: int = 25,
) -> Estimate:
    """The estimate (see the module docstring) from the repository's ``snapshots`` (values recorded by
    other hosts are untrusted numbers: anything but a non-negative integer counts as 0)."""
    runs = sorted((s for s in snapshots if _same_run(s, host, profile, paths)), key=lambda s: s.datetime)
    recent = runs[-HISTORY:]
    what = f"profile {profile}" if profile is not None else "these paths"
    if not recent:
        return Estimate(
            PACK + METADATA_BYTES,
            METADATA_INODES + 1,
            f"no earlier backup of {what} on {host} to go by: one pack at least",
        )
    added = max(_int(s.summary.get("added_bytes_new_stored")) for s in recent)
    need = added + added * margin // 100 + METADATA_BYTES
    packs = max(_int(s.summary.get("added_packs")) for s in recent) or need // PACK + 1
    sizes = {
        str(name): _int(c.get("size")) for name, c in recent[-1].components.items() if isinstance(c, dict)
    }
    basis = (
        f"the most one of the last {len(recent)} backup(s) of {what} added, {human_bytes(added)}, "
        f"plus {margin}%"
    )
    return Estimate(need, packs + packs * margin // 100 + METADATA_INODES, basis, sizes)


# ------------------------------------------------------------------------------------------ room
def _measure(role: str, path: str, get: Callable[[], Space | str]) -> tuple[FolderCheck, Space | None]:
    check = FolderCheck(role, path, 0, 0)
    try:
        found = get()
    except (SafeholdError, OSError) as exc:
        check.ok = False
        check.message = f"the free space of the {role} {path} could not be read: {exc}"
        check.hint = "Check that the folder exists and is readable."
        return check, None
    if isinstance(found, str):
        check.skipped = found
        check.message = f"{role} {path}: not checked ({found})"
        return check, None
    check.total, check.free = found.total, found.free
    check.total_inodes, check.free_inodes = found.total_inodes, found.free_inodes
    return check, found


def _judge(
    check: FolderCheck, space: Space, need: int, need_inodes: int, shared: str, warn_usage: int
) -> None:
    check.need, check.need_inodes = need, need_inodes
    used = space.total - space.free if space.used is None else space.used
    pct = 100 * space.used_fraction
    after = 100 * (used + need) / (used + space.free) if used + space.free else 0.0
    figures = (
        f"{human_bytes(space.free)} free of {human_bytes(space.total)} ({pct:.0f}% used), "
        f"an estimated {human_bytes(need)} needed{shared}"
    )
    if need > space.free:
        check.ok = False
        check.message = f"not enough space for the backup in the {check.role} {check.path}: {figures}"
        check.hint = (
            "Free space there ('safehold forget --prune' for the repository), move the folder, or give "
            "it a larger file system; nothing was written."
        )
    elif space.total_inodes and need_inodes > space.free_inodes:
        check.ok = False
        check.message = (
            f"not enough inodes for the backup in the {check.role} {check.path}: {space.free_inodes} free "
            f"of {space.total_inodes}, about {need_inodes} needed{shared}"
        )
        check.hint = (
            "Remove files there, or give the folder a file system with more inodes; nothing was written."
        )
    else:
        check.message = f"{check.role} {check.path}: {figures}"
    if after > warn_usage:
        check.low = True
        if check.ok:
            check.message += f"; {after:.0f}% used afterwards, above the warning level of {warn_usage}%"


def check_room(
    backend: Backend | None,
    estimate: Estimate,
    settings: PreflightSettings | PreflightDefaults,
    *,
    cache_dir: str | None = None,
    temp_dir: str | None = None,
) -> list[FolderCheck]:
    """Measure the repository (``backend``; None: not opened), the cache and the temporary folder against
    ``estimate``."""
    local_repo = backend is not None and backend.properties.local
    connections = backend.properties.connections if backend is not None else 2
    cache_path = cache_dir or str(cache_root())
    temp_path = temp_dir or tempfile.gettempdir()
    wanted: list[tuple[str, str, Callable[[], Space | str], int, int]] = []
    if backend is not None:
        wanted.append(("repository", backend.properties.location, lambda: space_of(backend),
                       estimate.bytes, estimate.inodes))  # fmt: skip
    wanted.append(("cache", cache_path, lambda: local_space(cache_path), METADATA_BYTES * 4, 4))
    # packs for a remote repository wait in the temporary folder: one per open pack and upload in flight
    spool = 0 if local_repo else (connections + 2) * PACK
    wanted.append(("temporary folder", temp_path, lambda: local_space(temp_path), spool, connections + 2))
    measured = [(*_measure(role, path, get), need, inodes) for role, path, get, need, inodes in wanted]
    # folders on one file system share its free space: each is judged against the sum of their needs
    groups: dict[object, list[int]] = {}
    for i, (_, space, _, _) in enumerate(measured):
        if space is not None:
            groups.setdefault(space.device if space.device is not None else ("remote", i), []).append(i)
    for members in groups.values():
        need = sum(measured[i][2] for i in members)
        inodes = sum(measured[i][3] for i in members)
        for i in members:
            check, space, _, _ = measured[i]
            assert space is not None
            others = [measured[j][0].role for j in members if j != i]
            check.shared_with = others
            shared = f" (with the {' and the '.join(others)} on the same file system)" if others else ""
            _judge(check, space, need, inodes, shared, settings.warn_usage)
    return [m[0] for m in measured]


def low_file_systems(folders: list[FolderCheck]) -> list[FolderCheck]:
    """The low folders, one per file system (the first of the folders that share one: its message names
    the others), so one full disk is one warning, not three."""
    out: list[FolderCheck] = []
    for f in folders:
        if f.low and not any(g.role in f.shared_with for g in out):
            out.append(f)
    return out


# ------------------------------------------------------------------------------------------ components
def component_findings(
    config: Config, names: list[str], *, timeout: float, doctor: bool = False
) -> list[Finding]:
    """Each component's own preflight, all at once (daemon threads: one that hangs is reported as
    unfinished after ``timeout`` seconds and left behind). Before a backup (``doctor`` false) the backup
    user's hygiene finding is left out. Never raises."""
    from safehold.sources.base import Finding, SourceContext
    from safehold.sources.checks import BACKUP_USER_CHECK

    results: dict[str, list[Finding]] = {}
    lock = threading.Lock()

    def work(name: str) -> None:
        try:
            found = config.build_source(name).preflight(SourceContext())
        except SafeholdError as exc:
            found = [Finding(name, "component", False, exc.message, exc.hint or None)]
        except Exception as exc:  # one kind's bug must not hide the others
            found = [Finding(name, "component", False, f"unexpected {type(exc).__name__}: {exc}")]
        with lock:
            results[name] = found

    threads = [threading.Thread(target=work, args=(n,), name=f"preflight-{n}", daemon=True) for n in names]
    deadline = time.monotonic() + timeout
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out: list[Finding] = []
    with lock:
        for name in names:
            if name not in results:
                out.append(
                    Finding(name, "component", False, f"its checks did not finish within {timeout:g} s")
                )
                continue
            out += [f for f in results[name] if doctor or f.check != BACKUP_USER_CHECK]
    return out


# ------------------------------------------------------------------------------------------ together
def run_preflight(
    config: Config | None,
    *,
    backend: Backend | None,
    snapshots: list[Snapshot],
    profile: str | None,
    components: list[str],
    paths: list[str] | None = None,
    doctor: bool = False,
    host: str | None = None,
) -> PreflightReport:
    """Everything above for one backup (or, with ``doctor``, on demand: every finding kept). Without a
    configuration (a backup of paths): the default settings, and no components."""
    started = time.monotonic()
    settings = config.preflight if config is not None else PREFLIGHT
    estimate = estimate_need(
        snapshots, host=host or socket.gethostname(), profile=profile, paths=paths, margin=settings.margin
    )
    folders = check_room(backend, estimate, settings, cache_dir=os.environ.get("SAFEHOLD_CACHE_DIR"))
    findings = (
        component_findings(config, components, timeout=settings.timeout, doctor=doctor)
        if config is not None and (settings.components or doctor)
        else []
    )
    return PreflightReport(estimate, folders, findings, time.monotonic() - started)


def require_room(report: PreflightReport) -> None:
    """Raise :class:`PreflightFailed` naming every folder that cannot take the backup."""
    blocking = report.blocking
    if blocking:
        raise PreflightFailed(
            "; ".join(f.message for f in blocking) + f" ({report.estimate.basis})",
            hint=blocking[0].hint,
        )
