"""Installing, showing and removing the scheduled jobs below a root folder (``/``, or a test's folder).

``install`` writes the files :mod:`safehold.operations.schedule.jobs` renders, then a **manifest**
(``var/lib/safehold/schedule.json``: the mode, the configuration file, the jobs, every file written with
its SHA-256, the folders it created, the timers it enabled). ``remove`` reads the manifest and removes
exactly that: each file whose content is still what was written (a file changed since is kept and
reported), the folders it created when empty, the manifest; the timers are disabled first. Installing
again removes the previous installation the same way, and a file in the way that safehold did not write
is never overwritten.

systemd is driven through ``systemctl``: on the real root with systemd running, ``daemon-reload`` and
``enable --now``/``disable --now``; below another root, ``systemctl --root=DIR enable``/``disable``
(symlinks only, nothing started); without systemctl, nothing (the result says so).

:func:`job_status` gives each job's next run (from systemd when it runs the timers, else computed from
the calendar) and its last run (from the audit log's records of that job, and systemd's last trigger).
:func:`check_installed` is doctor's check: is a schedule installed, and does it match the configuration.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safehold.config.calendar import parse_calendar
from safehold.config.schema import Config
from safehold.errors import SafeholdError
from safehold.fsutil import atomic_write
from safehold.operations.schedule.jobs import (
    CRON_FILE,
    UNIT_DIR,
    UNIT_PREFIX,
    Invocation,
    Plan,
    plan_jobs,
)

MANIFEST = "var/lib/safehold/schedule.json"
SYSTEMD, CRON = "systemd", "cron"
WANTS = "timers.target.wants"
#: The folders install may create (and remove again when empty): those of its files and their parents.
_DIRS = {
    "/".join(path.split("/")[:i])
    for path in (f"{UNIT_DIR}/{WANTS}", CRON_FILE.rpartition("/")[0], MANIFEST.rpartition("/")[0])
    for i in range(1, path.count("/") + 2)
}


@dataclass
class Manifest:
    mode: str
    config: str
    invocation: dict[str, list[str]]
    jobs: list[dict[str, Any]]
    #: path relative to the root -> SHA-256 of what was written
    files: dict[str, str]
    #: folders install created (relative), deepest first
    dirs: list[str] = field(default_factory=list)
    timers: list[str] = field(default_factory=list)
    installed: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ours(rel: str) -> bool:
    """Whether ``rel`` is a path install may write (a manifest is input too: never remove other files)."""
    if rel == CRON_FILE:
        return True
    folder, _, name = rel.rpartition("/")
    return (
        folder == UNIT_DIR
        and name.startswith(UNIT_PREFIX)
        and name.endswith((".service", ".timer"))
        and "/" not in name
        and ".." not in name
    )


def read_manifest(root: Path) -> Manifest | None:
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise SafeholdError(
            f"cannot read the schedule manifest {path}: {exc}",
            hint="Remove the units it lists by hand, then the manifest, and install again.",
        ) from None
    bad = [rel for rel in manifest.files if not _ours(rel)]
    bad += [rel for rel in manifest.dirs if rel not in _DIRS]
    if bad:
        raise SafeholdError(
            f"the schedule manifest {path} names files safehold never writes: {', '.join(bad[:3])}",
            hint="Someone changed it; check the system, remove the manifest and install again.",
        )
    return manifest


class Systemctl:
    """``systemctl`` for ``root``: real (``/`` with systemd running), offline (``--root=DIR``) or absent."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.program = shutil.which("systemctl")
        self.real = root == Path("/") and Path("/run/systemd/system").is_dir()

    @property
    def usable(self) -> bool:
        return self.program is not None and (self.real or self.root != Path("/"))

    def run(self, *args: str) -> str:
        assert self.program is not None
        cmd = [self.program, *([] if self.real else [f"--root={self.root}"]), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if p.returncode != 0:
            raise SafeholdError(
                f"systemctl {' '.join(args)} failed: {(p.stderr or p.stdout).strip()[:300]}",
                hint="See 'journalctl -xe'; 'safehold schedule status' shows what is installed.",
            )
        return p.stdout

    def enable(self, timers: list[str]) -> str:
        if not timers:
            return ""
        if not self.usable:
            return f"not enabled (systemd is not running here): systemctl enable --now {' '.join(timers)}"
        if self.real:
            self.run("daemon-reload")
            self.run("enable", "--now", *timers)
            return f"enabled and started {len(timers)} timer(s)"
        self.run("enable", *timers)
        return f"enabled {len(timers)} timer(s) below {self.root}"

    def disable(self, timers: list[str]) -> None:
        if timers and self.usable:
            self.run("disable", *(["--now"] if self.real else []), *timers)

    def times(self, timer: str) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(next elapse, last trigger) of a running timer."""
        out = self.run(
            "show", "--timestamp=unix", "-p", "NextElapseUSecRealtime", "-p", "LastTriggerUSec", timer
        )
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

        def parse(text: str | None) -> dt.datetime | None:
            if not text or not text.startswith("@"):
                return None
            return dt.datetime.fromtimestamp(int(text[1:]), dt.UTC).astimezone()

        return parse(values.get("NextElapseUSecRealtime")), parse(values.get("LastTriggerUSec"))


@dataclass
class Change:
    """What install or remove did: files written or removed, files kept, what systemctl did."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return asdict(self)


def remove(root: Path, systemctl: Systemctl | None = None) -> Change:
    """Remove what the manifest below ``root`` lists; a file changed since it was written is kept (and
    listed in ``kept``). Nothing installed: an empty Change."""
    change = Change()
    manifest = read_manifest(root)
    if manifest is None:
        return change
    if manifest.mode == SYSTEMD:
        (systemctl or Systemctl(root)).disable(manifest.timers)
    for rel, digest in sorted(manifest.files.items()):
        path = root / rel
        try:
            data = path.read_bytes() if not path.is_symlink() else b""
        except FileNotFoundError:
            continue
        if _sha(data) != digest:
            change.kept.append(rel)
            continue
        path.unlink()
        change.removed.append(rel)
    (root / MANIFEST).unlink()
    for rel in manifest.dirs:
        try:
            (root / rel).rmdir()
        except OSError:  # not empty (someone else's files) or gone
            pass
    if manifest.mode == SYSTEMD and (systemctl or Systemctl(root)).real:
        (systemctl or Systemctl(root)).run("daemon-reload")
    if change.kept:
        change.notes.append("changed since they were installed, so left in place: " + ", ".join(change.kept))
    return change


def _mkdirs(root: Path, rel_dir: str, created: list[str]) -> None:
    missing = []
    parts = rel_dir.split("/")
    for i in range(len(parts), 0, -1):
        rel = "/".join(parts[:i])
        if (root / rel).is_dir():
            break
        missing.append(rel)
    for rel in reversed(missing):
        (root / rel).mkdir(mode=0o755)
        created.insert(0, rel)


def install(
    root: Path,
    mode: str,
    files: dict[str, str],
    plan: Plan,
    inv: Invocation,
    config_path: Path,
    systemctl: Systemctl | None = None,
) -> Change:
    """Replace any previous installation below ``root`` by ``files`` (rendered for ``plan``), write the
    manifest, and enable the timers. Raises SafeholdError, before writing anything, when a file of the
    previous installation was changed or a file in the way was not written by safehold."""
    previous = read_manifest(root)
    if previous is not None:
        changed = [
            rel
            for rel, digest in previous.files.items()
            if (root / rel).exists() and _sha((root / rel).read_bytes()) != digest
        ]
        if changed:
            raise SafeholdError(
                f"{', '.join(changed)} changed since 'safehold schedule install' wrote it",
                hint="Put your changes into [schedule] in the configuration, remove the file, and install again.",
            )
    owned = set(previous.files) if previous else set()
    in_way = [rel for rel in files if (root / rel).exists() and rel not in owned]
    if in_way:
        raise SafeholdError(
            f"{root / in_way[0]} exists and was not written by safehold",
            hint="Remove or rename it (it may be an older schedule of your own), then install again.",
        )
    change = Change()
    if previous is not None:
        remove(root, systemctl)
    created: list[str] = []
    digests = {}
    for rel, text in sorted(files.items()):
        _mkdirs(root, rel.rpartition("/")[0], created)
        atomic_write(root / rel, text.encode(), mode=0o644)
        digests[rel] = _sha(text.encode())
        change.written.append(rel)
    timers = sorted(Path(rel).name for rel in files if rel.endswith(".timer"))
    _mkdirs(root, MANIFEST.rpartition("/")[0], created)
    manifest = Manifest(
        mode=mode,
        config=str(config_path),
        invocation=inv.as_dict(),
        jobs=[j.as_dict() for j in plan.jobs],
        files=digests,
        dirs=created,
        timers=timers,
    )
    _write_manifest(root, manifest)
    if mode == SYSTEMD:
        wants = f"{UNIT_DIR}/{WANTS}"
        existed = (root / wants).is_dir()
        change.notes.append((systemctl or Systemctl(root)).enable(timers))
        if not existed and (root / wants).is_dir():  # made by systemctl enable: remove it with the rest
            manifest.dirs.insert(0, wants)
            _write_manifest(root, manifest)
    return change


def _write_manifest(root: Path, manifest: Manifest) -> None:
    atomic_write(root / MANIFEST, json.dumps(asdict(manifest), indent=1).encode() + b"\n", mode=0o600)


# ------------------------------------------------------------------------------------------ status
@dataclass
class JobStatus:
    name: str
    calendar: str
    command: list[str]
    next_run: str | None
    next_from: str
    last_trigger: str | None = None
    #: the newest audit record of this job: time, result, exit code, snapshot
    last: dict[str, Any] | None = None


def job_status(
    manifest: Manifest, records: list[dict[str, Any]], systemctl: Systemctl | None, now: dt.datetime
) -> list[JobStatus]:
    """Each installed job's next and last run; ``systemctl`` (running, real) gives systemd's own times."""
    newest: dict[str, dict[str, Any]] = {}
    for r in records:
        job = r.get("job")
        if isinstance(job, str) and str(r.get("time", "")) >= str(newest.get(job, {}).get("time", "")):
            newest[job] = r
    out = []
    for j in manifest.jobs:
        name = str(j["name"])
        cal = parse_calendar(str(j["calendar"]))
        st = JobStatus(name, str(j["calendar"]), [str(a) for a in j["args"]], None, "calendar")
        if manifest.mode == SYSTEMD and systemctl is not None and systemctl.real:
            nxt, last = systemctl.times(f"{UNIT_PREFIX}{name}.timer")
            st.next_run, st.next_from = (nxt.isoformat() if nxt else None), "systemd"
            st.last_trigger = last.isoformat() if last else None
        else:
            nxt = cal.next_after(now)
            st.next_run = nxt.isoformat() if nxt else None
        rec = newest.get(name)
        if rec is not None:
            st.last = {k: rec.get(k) for k in ("time", "result", "exit_code", "snapshot_ids", "error")}
        out.append(st)
    return out


# ------------------------------------------------------------------------------------------ doctor
def check_installed(
    root: Path, config: Config, config_path: Path | None
) -> tuple[bool, str, str | None, list[str]]:
    """Doctor's check: (ok, message, hint, detail lines). No schedule is a problem only when the
    configuration has a [schedule] table (the operator asked for one)."""
    manifest = read_manifest(root)
    if manifest is None:
        asked = "schedule" in config.model_fields_set
        why = " although the configuration has [schedule]" if asked else ": backups run only when started"
        return not asked, f"no schedule installed{why}", "Run 'safehold schedule install'.", []
    lines: list[str] = []
    wanted = {j.name: j.as_dict() for j in plan_jobs(config).jobs}
    have = {str(j["name"]): j for j in manifest.jobs}
    for name in sorted(set(wanted) | set(have)):
        if name not in have:
            lines.append(f"missing: {name} ({wanted[name]['calendar']})")
        elif name not in wanted:
            lines.append(f"installed but no longer configured: {name}")
        elif wanted[name] != have[name]:
            lines.append(
                f"differs: {name}: installed {_job_text(have[name])}; configured {_job_text(wanted[name])}"
            )
    if config_path is not None and Path(manifest.config) != config_path:
        lines.append(f"the jobs read {manifest.config}, not {config_path}")
    for rel, digest in sorted(manifest.files.items()):
        path = root / rel
        if not path.exists():
            lines.append(f"missing file: {path}")
        elif _sha(path.read_bytes()) != digest:
            lines.append(f"changed since installed: {path}")
    jobs = ", ".join(f"{n} ({have[n]['calendar']})" for n in sorted(have))
    if lines:
        message = f"the installed schedule ({manifest.mode}) does not match the configuration"
        return False, message, "Run 'safehold schedule install' again.", lines
    return True, f"installed ({'systemd timers' if manifest.mode == SYSTEMD else 'cron'}): {jobs}", None, []


def _job_text(job: dict[str, Any]) -> str:
    return f"{job.get('calendar')} safehold {' '.join(str(a) for a in job.get('args') or [])}"
