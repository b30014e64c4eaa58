"""Restore drills: prove that a snapshot restores, component by component, into a sandbox, and time it.

A drill picks a snapshot (the newest of the drill profile, or ``--snapshot``), makes its own sandbox
``<drill.sandbox>/drill-<id>`` (mode 0700, a marker file naming the process:
:mod:`safehold.operations.observe.drill_sandbox`), and hands each component of the profile to its kind's
:meth:`Source.verify` with a :class:`~safehold.sources.verify.Sandbox`: files are restored below the
sandbox and compared with the snapshot, dumps are loaded into scratch databases with generated names on
the drill's scratch servers and compared with the statistics recorded at backup time, Redis is loaded by
a scratch redis-server, git bundles are cloned, SaaS exports parsed.
This module never names a kind: everything kind-specific is the kind's ``verify``.

Then the configured health checks that say something about a restore run against the sandbox
(:mod:`safehold.operations.observe.drill_health`): checks of a component's data while its kind's ``verify`` has it
loaded (``Sandbox.loaded``), file checks on the restored copies; the others are listed as skipped.

A component that is missing from the snapshot, or failed at backup time, fails the drill. Every step
and the whole are timed; the total is measured against the RTO. The result is recorded in the repository
(:mod:`safehold.operations.observe.results`), where ``status`` finds it.

Cleanup: the sandbox and everything registered in it (scratch databases, servers) are removed at the end,
also after a failure, Ctrl-C or SIGTERM (``finally``), unless ``keep``. A drill that was killed
(SIGKILL, power loss) leaves its sandbox with a marker whose process is gone: the next drill, or
:func:`cleanup_leftovers` (``drill --cleanup``), removes it through each kind's ``cleanup_scratch``
(the programs it started died with it: :func:`safehold.proc.die_with_parent`; sessions still working in
its scratch databases are ended first, and no drop waits without end). What could not be removed stays
registered for the next one.

Deadlines: each step (a component's verify, its restored-files checks, the health checks) runs under
:func:`~safehold.operations.observe.drill_deadline.deadline` (``[drill] step_timeout``): a step still
running then is interrupted like Ctrl-C, its own clean-up runs, it fails with that reason and the drill
goes on.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safehold import proc
from safehold.config.schema import Config
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.errors import NotFound, SafeholdError
from safehold.operations.backup.components import EngineComponentReader
from safehold.operations.observe import drill_sandbox, results
from safehold.operations.observe.checkrecord import now_utc
from safehold.operations.observe.drill_deadline import StepTimedOut, deadline
from safehold.operations.observe.drill_health import DrillHealth, make_where
from safehold.operations.observe.status import human_duration
from safehold.operations.restore.profile import resolve_config
from safehold.sources.base import Finding, Source, SourceContext
from safehold.sources.sandboxpath import Where
from safehold.sources.verify import Sandbox, VerifyReport


@dataclass
class DrillRequest:
    profile: str | None = None
    snapshot: str = "latest"
    keep: bool = False
    #: overrides of the scratch database servers (--db-host, --db-port)
    db_host: str | None = None
    db_port: int | None = None


@dataclass
class DrillResult:
    snapshot: Snapshot
    profile: str | None
    steps: list[results.StepResult]
    seconds: float
    rto_seconds: float | None
    sandbox: str | None
    cleaned: list[str] = field(default_factory=list)
    result_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: the configured health checks against the sandbox (skipped ones say why)
    health: list[results.StepResult] = field(default_factory=list)

    @property
    def components_ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def ok(self) -> bool:
        return self.components_ok and all(h.ok for h in self.health)

    @property
    def within_rto(self) -> bool | None:
        return None if self.rto_seconds is None else self.seconds <= self.rto_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshot_id": self.snapshot.id,
            "snapshot_time": self.snapshot.time,
            "host": self.snapshot.hostname,
            "profile": self.profile,
            "seconds": self.seconds,
            "rto_seconds": self.rto_seconds,
            "within_rto": self.within_rto,
            "components": [s.model_dump() for s in self.steps],
            "health": [h.model_dump() for h in self.health],
            "details": self.details,
            "sandbox_kept": self.sandbox,
            "cleaned_leftovers": self.cleaned,
            "result_id": self.result_id,
        }


# ------------------------------------------------------------------------------------------ sandboxes
def cleanup_leftovers(base: Path, *, kept: bool = False) -> list[str]:
    """Remove the sandboxes (and their scratch databases and servers) of drills that are no longer
    running on this host; those kept with ``--keep`` only with ``kept``. Only folders named
    ``drill-<hex>`` holding a drill marker are touched."""
    out: list[str] = []
    try:
        entries = sorted(os.listdir(base))
    except FileNotFoundError:
        return out
    for name in entries:
        path = base / name
        if not name.startswith(drill_sandbox.PREFIX) or not stat.S_ISDIR(os.lstat(path).st_mode):
            continue
        try:
            marker = json.loads((path / drill_sandbox.MARKER).read_text())
            pid, host = int(marker["pid"]), str(marker["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (
            host != socket.gethostname()
            or drill_sandbox.alive(pid, marker.get("pid_start"))
            or (marker.get("kept") and not kept)
        ):
            continue  # a drill that is still running (or another host's, on shared storage), or kept
        cleaned = drill_sandbox.clean_dir(path)
        what = "a kept drill" if marker.get("kept") else "a killed drill"
        out.append(
            f"removed the sandbox of {what} ({name}, pid {pid})"
            + (f": {'; '.join(cleaned)}" if cleaned else "")
        )
    return out


# ------------------------------------------------------------------------------------------ the drill
def pick_snapshot(repo: Repository, profile: str | None, ref: str) -> Snapshot:
    if ref != "latest":
        return repo.find_snapshot(ref)
    return repo.latest(
        lambda s: bool(s.components) and "safety" not in s.tags and (profile is None or s.profile == profile),
        none=NotFound(
            f"no snapshot of profile {profile!r} to drill" if profile else "no profile snapshot to drill",
            hint="Run 'safehold backup --profile P' first, or name one with --snapshot.",
        ),
    )


def _components(snap: Snapshot, config: Config) -> list[str]:
    """What the drill must prove: the profile's components (so a missing one fails), else the snapshot's."""
    if snap.profile and snap.profile in config.profiles:
        return list(config.profiles[snap.profile].components)
    return sorted(snap.components)


def _step(
    name: str, kind: str, ok: bool, seconds: float, message: str, hint: str | None = None
) -> results.StepResult:
    return results.StepResult(
        name=name, kind=kind, ok=ok, seconds=round(seconds, 3), message=message[:2000], hint=hint
    )


def run_drill(
    repo: Repository,
    local: Config | None,
    req: DrillRequest,
    *,
    on_step: Callable[[results.StepResult], None] = lambda _s: None,
    log: Callable[[str], None] = lambda _m: None,
    on_health: Callable[[results.StepResult], None] = lambda _s: None,
) -> DrillResult:
    """Run a drill (see the module docstring) and record its result; never raises for a failed
    component or health check (the result says it), raises for what prevents a drill (no snapshot, no
    configuration). ``on_step`` sees each component's line as it ends, ``on_health`` each check's."""
    settings = (local or Config.model_validate({"repository": {"url": "-"}})).drill
    base = Path(settings.sandbox)
    cleaned = cleanup_leftovers(base)
    profile = req.profile or settings.profile or (local.defaults.profile if local else None)
    snap = pick_snapshot(repo, profile, req.snapshot)
    started = now_utc()
    try:
        config = resolve_config(repo, snap, local)
    except SafeholdError as exc:  # e.g. the stored configuration does not decrypt: the drill has failed
        step = _step(
            "(configuration)", "", False, 0, f"the snapshot's configuration cannot be read: {exc.message}"
        )
        on_step(step)
        result = DrillResult(snap, snap.profile, [step], 0.0, None, None, cleaned)
        _record(repo, result, started, log)
        return result
    rto = local.objectives.rto if local else config.objectives.rto
    from safehold.config.duration import parse_duration

    rto_seconds = parse_duration(rto).total_seconds() if rto else None
    step_timeout = parse_duration(settings.step_timeout).total_seconds()
    drill_id = secrets.token_hex(4)
    keep = req.keep or settings.keep_sandbox
    t0 = time.monotonic()
    steps: list[results.StepResult] = []
    details: dict[str, Any] = {}
    root = drill_sandbox.make_sandbox(base, drill_id)
    names = _components(snap, config)
    health = DrillHealth(list(config.health_checks), names)
    sources: dict[str, Source] = {}
    lock = repo.lock(exclusive=False, operation="drill")
    note_programs = drill_sandbox.note_programs(root)
    proc.ON_START.append(note_programs)
    try:
        repo.load_index()
        for name in names:
            s0 = time.monotonic()
            kind = config.components[name].kind if name in config.components else ""
            entry = snap.components.get(name)
            if not isinstance(entry, dict):
                step = _step(
                    name,
                    kind,
                    False,
                    0,
                    f"missing: profile {snap.profile} lists it, the snapshot does not hold it",
                )
            elif entry.get("status") != "ok":
                step = _step(
                    name,
                    kind,
                    False,
                    0,
                    f"missing: failed at backup time ({entry.get('error') or entry.get('status')})",
                )
            elif name not in config.components:
                step = _step(name, kind, False, 0, "not defined in the snapshot's configuration")
            else:
                try:
                    with deadline(step_timeout, f"the drill of {name}"):
                        step = _verify_one(
                            repo, snap, config, name, kind, root, drill_id, req, settings, keep, log,
                            details, health, sources,
                        )  # fmt: skip
                except StepTimedOut as exc:  # stopped where the kind's verify does not catch it
                    step = _step(name, kind, False, 0, exc.message, exc.hint)
                step.seconds = round(time.monotonic() - s0, 3)
            steps.append(step)
            on_step(step)
        ok = {s.name for s in steps if s.ok}
        where = make_where(root, sources, ok)
        for name in [n for n in names if n in ok]:
            try:
                with deadline(step_timeout, f"the checks of the restored {name}"):
                    parsed = _check_restored(sources[name], root, where, log)
            except StepTimedOut as exc:
                parsed = _step(
                    f"{name}:parsed", sources[name].kind, False, step_timeout, exc.message, exc.hint
                )
            if parsed is not None:
                steps.append(parsed)
                on_step(parsed)
        try:
            with deadline(step_timeout, "the health checks against the sandbox"):
                health.run_paths(root, sources, ok, where)
        except StepTimedOut as exc:
            log(f"warning: {exc.message}")
            steps.append(_step("(health checks)", "", False, step_timeout, exc.message, exc.hint))
    finally:
        proc.ON_START.remove(note_programs)
        lock.release()
        if not keep:
            # what verify left (it drops and stops its own): only a failure to clean is news
            cleaned += [m for m in drill_sandbox.clean_dir(root) if m.startswith("could not")]
        else:
            marker = json.loads((root / drill_sandbox.MARKER).read_text())
            (root / drill_sandbox.MARKER).write_text(json.dumps({**marker, "kept": True}))
    seconds = round(time.monotonic() - t0, 3)
    result = DrillResult(
        snap,
        snap.profile,
        steps,
        seconds,
        rto_seconds,
        str(root) if keep else None,
        cleaned,
        details=details,
        health=health.steps(snap.profile),
    )
    for line in result.health:
        on_health(line)
    _record(repo, result, started, log)
    return result


def _record(repo: Repository, result: DrillResult, started: Any, log: Callable[[str], None]) -> None:
    snap = result.snapshot
    failed = [s.name for s in result.steps if not s.ok] + [
        f"health check {h.name}" for h in result.health if not h.ok
    ]
    message = f"failed: {', '.join(failed)}" if failed else f"passed in {human_duration(result.seconds)}"
    record = results.Result(
        type="drill",
        time=started.isoformat(timespec="seconds"),
        host=socket.gethostname(),
        snapshot_host=snap.hostname,
        snapshot_id=snap.id,
        snapshot_time=snap.datetime.isoformat(),
        profile=snap.profile,
        ok=result.ok,
        seconds=result.seconds,
        message=message,
        steps=result.steps,
        health=result.health,
        details={"rto_seconds": result.rto_seconds},
    )
    try:
        result.result_id = results.record(repo, record)
    except SafeholdError as exc:
        log(f"warning: the drill's result was not recorded in the repository: {exc.message}")


def _verify_one(
    repo: Repository,
    snap: Snapshot,
    config: Config,
    name: str,
    kind: str,
    root: Path,
    drill_id: str,
    req: DrillRequest,
    settings: Any,
    keep: bool,
    log: Callable[[str], None],
    details: dict[str, Any],
    health: DrillHealth,
    sources: dict[str, Source],
) -> results.StepResult:
    scratch = dict(settings.scratch(kind))
    if scratch and req.db_host:
        scratch["host"] = req.db_host
    if scratch and req.db_port:
        scratch["port"] = req.db_port
    sandbox = Sandbox(
        root=root, db=scratch, prefix=f"safehold_drill_{drill_id}_", keep=keep, loaded=health.loaded(name)
    )
    try:
        source = sources[name] = config.build_source(name)
        reader = EngineComponentReader(repo, snap, name)
        report = source.verify(reader, sandbox, SourceContext(log=log))
    except (SafeholdError, OSError) as exc:
        msg = exc.message if isinstance(exc, SafeholdError) else f"{type(exc).__name__}: {exc}"
        return _step(name, kind, False, 0, msg)
    if report.details:
        details[name] = report.details
    hint = next((c.hint for c in report.checks if not c.ok and c.hint), None)
    return _step(name, kind, report.ok, report.duration, report.summary, hint)


def _check_restored(
    source: Source, root: Path, where: Where, log: Callable[[str], None]
) -> results.StepResult | None:
    """The component's checks of what the drill restored as a whole (``Source.check_restored``: nginx -t,
    certificates), as the line ``NAME:parsed``; None when the kind has none."""
    t0 = time.monotonic()
    try:
        findings = source.check_restored(root, where, SourceContext(log=log))
    except (SafeholdError, OSError) as exc:
        msg = exc.message if isinstance(exc, SafeholdError) else f"{type(exc).__name__}: {exc}"
        findings = [Finding(source.name, "restored", False, msg)]
    if not findings:
        return None
    report = VerifyReport(source.name, all(f.ok for f in findings), findings)
    hint = next((f.hint for f in findings if not f.ok and f.hint), None)
    return _step(f"{source.name}:parsed", source.kind, report.ok, time.monotonic() - t0, report.summary, hint)
