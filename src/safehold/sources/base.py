"""The Source contract: what produces a component's data, and restores it.

Glossary:

* **Component** — a named source with its settings (``app`` = files under /var/www/app, ``database`` =
  mysql askproai_db). In a snapshot each component owns one top-level folder named after it.
* **ComponentWriter** / **ComponentReader** (:mod:`.component`) — what the engine hands a source at backup
  time (write the component's folder, streams without a temporary copy) and at restore time (read it,
  verified).
* **Sandbox**, **VerifyReport** — what a drill hands :meth:`Source.verify` and what it proves; the helpers
  for kinds that verify are in :mod:`.verify`.

A source must *fail closed*: when its program exits non-zero, its dump is empty where data exists, its
tool is missing or its server unreachable, :meth:`Source.backup` raises
:class:`~safehold.errors.SourceError` (with the program's stderr in the message or log). The engine then
marks the component failed and never records the snapshot as good.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from safehold.engine.format.tree import Node
from safehold.errors import UsageError
from safehold.sources.component import ComponentReader, ComponentWriter, walk_files
from safehold.sources.export import DEFAULT_NOTE, ExportTree, Part, Place, default_layout
from safehold.sources.sandboxpath import Where


@dataclass
class SourceContext:
    """What a source may use besides its writer/reader: a log, whether a restore only plans or may
    replace what exists, and the restore options (checked by :meth:`Source.restore_options`)."""

    log: Callable[[str], None] = lambda _msg: None
    dry_run: bool = False
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RestoreReport:
    """What a restore did or (dry run) would do, for the plan and the final report."""

    component: str
    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RestorePlan(RestoreReport):
    """What a restore will do: shown to the user as is (``actions``, ``warnings``), then executed as is
    by :meth:`Source.apply` (``steps``: the kind's own work items, in order; ``options``: the validated
    restore options the plan was made with)."""

    steps: list[Any] = field(default_factory=list)
    options: Any = None


@dataclass
class Finding:
    """One check of a preflight (``safehold doctor``, before a backup) or a verification: what was
    checked (``subject``: a component name, or "repository"/"secrets" for the doctor's own checks),
    whether it is ok, what was found, and for a problem a hint and extra lines (GRANT statements...)."""

    subject: str
    check: str
    ok: bool
    message: str
    hint: str | None = None
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "check": self.check,
            "ok": self.ok,
            "message": self.message,
            "hint": self.hint,
            "lines": list(self.lines),
        }


@dataclass
class Redirect:
    """Where a restore goes instead of the original places (``restore --target-root``, ``--db-*``,
    ``--redis-*``, ``--install-packages``). Each kind maps it onto its own restore options
    (:meth:`Source.redirect`); a kind it does not concern ignores it."""

    target_root: str | None = None
    #: Another database server / name: host, port, user, database, password (a SecretRef or its dict).
    db: dict[str, Any] = field(default_factory=dict)
    #: Another Redis server: host, port (default: the ``db`` redirect's host, port, user, password).
    redis: dict[str, Any] = field(default_factory=dict)
    install_packages: bool = False


def server_moved(settings: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A component's connection ``settings`` with ``overrides`` applied (a restore redirected to another
    server, a drill's scratch server): a host or port given there means TCP, so the socket goes."""
    out = dict(settings)
    if "host" in overrides or "port" in overrides:
        out.pop("socket", None)
    out.update(overrides)
    return out


@dataclass
class Sandbox:
    """Where :meth:`Source.verify` may put things (drills): nothing outside it is changed.

    ``root`` is an empty private folder the caller owns (files, dumps, scratch databases' files go
    below it). ``db`` / ``redis`` redirect to scratch servers (host, port, user, password as a SecretRef
    dict); empty means the component's own server, where only databases named ``prefix`` + a random
    suffix are created, and dropped afterwards unless ``keep``.
    """

    root: Path
    db: dict[str, Any] = field(default_factory=dict)
    redis: dict[str, Any] = field(default_factory=dict)
    prefix: str = "safehold_drill_"
    keep: bool = False
    #: Called by :meth:`Source.verify` once, while the copy it loaded is live (a scratch database or
    #: server, a database file below ``root``), with the component's settings as health checks read them
    #: (:meth:`Source.redirected_settings`), pointing at that copy; secret references stay unresolved.
    #: Drills run the component's health checks there. Not called when nothing loaded.
    loaded: Callable[[dict[str, Any]], None] = field(default=lambda _settings: None)

    def scratch_name(self) -> str:
        """A new scratch name: the prefix and 8 random hex digits (valid as a database name everywhere)."""
        return f"{self.prefix}{secrets.token_hex(4)}"

    def folder(self, name: str) -> Path:
        """A new folder below the root for ``name`` (a component name: one path component)."""
        path = self.root / name
        path.mkdir(mode=0o700)
        return path

    def register(self, kind: str, resource: dict[str, Any]) -> None:
        """Record, durably and before creating it, a resource outside ``root`` that ``kind`` creates (a
        scratch database, a server it starts; secret references only, no values), so that a drill killed
        part-way is cleaned up later through ``Source.cleanup_scratch`` of the kind."""
        line = json.dumps({"kind": kind, "time": time.time(), **resource}, sort_keys=True) + "\n"
        fd = os.open(self.root / REGISTRY, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class VerifyReport:
    """What :meth:`Source.verify` proved: one finding per check (row counts, tree digests, parsed
    exports...), ok when every check is."""

    component: str
    ok: bool
    checks: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def summary(self) -> str:
        """One line: the failed checks' messages, else what was proved."""
        bad = [c for c in self.checks if not c.ok]
        if bad:
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            return "; ".join(f"{c.subject}: {c.message}" for c in bad[:3]) + more
        return "; ".join(c.message for c in self.checks[:4]) + (" ..." if len(self.checks) > 4 else "")


#: What a verification checked (the same record as a preflight's).
Check = Finding
#: The file below a sandbox root that lists what the drill created elsewhere (:meth:`Sandbox.register`).
REGISTRY = ".safehold-drill-resources.jsonl"


def registered(root: Path) -> list[dict[str, Any]]:
    """The resources a drill in ``root`` registered (malformed lines skipped)."""
    try:
        text = (root / REGISTRY).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
            out.append(doc)
    return out


class NoRestoreOptions(BaseModel):
    """The restore options of a kind that takes none."""

    model_config = ConfigDict(extra="forbid")


class Source(ABC):
    """A kind of data a component can hold: one subclass per kind, registered by ``kind`` in
    :mod:`safehold.sources.registry` (which returns ``type[Source]``, so strict mypy checks every plugin
    against this contract). Operations call only this contract and never name a kind.

    ``Options`` is the pydantic model of the component's settings (the ``[components.NAME]`` table);
    ``RestoreOptions`` the model of what a restore may be told (``--set NAME.KEY=VALUE`` and the
    redirects of :meth:`redirect`), checked by :meth:`restore_options`.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    RestoreOptions: ClassVar[type[BaseModel]] = NoRestoreOptions
    #: Where the kind comes in a restore of several components, lowest first: packages, system
    #: configuration, files, repositories, databases, caches, external services, commands.
    restore_rank: ClassVar[int] = 1000
    #: Whether :meth:`drift` compares this kind's folders between snapshots (``safehold diff``).
    compares_drift: ClassVar[bool] = False
    #: Whether the files of this kind's folders keep the times of the files they were read from (a copy
    #: of a file system), so ``safehold diff`` compares those times; otherwise they are written by the
    #: source (dumps, exports) and only their content, mode and owner count.
    keeps_file_times: ClassVar[bool] = False

    #: Export (``safehold export``, :mod:`safehold.sources.export`): the folder that components of kinds
    #: with the same ``export_folder`` share (``database``, ``system/redis``), each in a sub-folder named
    #: after it when the snapshot holds several of them; None: the component's own folder (its name).
    export_folder: ClassVar[str | None] = None
    #: The restore note of the default export layout, for the export's RESTORE.md (``{base}``: the folder
    #: in the export, ``{name}``: the component).
    export_note: ClassVar[str] = DEFAULT_NOTE
    #: What the export's guide says when an export holds this kind's data (database dumps hold all of the
    #: application's data), or None.
    export_warning: ClassVar[str | None] = None

    #: The validated settings; a subclass narrows the type (``options: MySQLOptions``).
    options: BaseModel

    def __init__(self, name: str, options: BaseModel | Mapping[str, Any]) -> None:
        self.name = name
        self.options = options if isinstance(options, self.Options) else self.Options.model_validate(options)

    # ------------------------------------------------------------------------------------ backup
    @abstractmethod
    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Write the component's data; return its metadata (counts, tool versions, statistics)."""

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        """Read-only checks that a backup can run now (tools, connection, privileges, paths, API key):
        one :class:`Finding` per check, a failed check as ``ok=False`` (never raised)."""
        return [Finding(self.name, "kind", True, f"{self.kind}: no checks for this kind")]

    def secrets_note(self) -> str | None:
        """Why this component's folder holds secrets (for RESTORE.md and exports), or None."""
        return None

    # ----------------------------------------------------------------------------------- restore
    @abstractmethod
    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """What restoring ``snap`` with ``ctx.options`` (see :meth:`restore_options`) would do; reads the
        snapshot and the live state, changes nothing. Raises SourceError when it cannot be done."""

    @abstractmethod
    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Execute ``plan`` (made by :meth:`plan_restore` of this source) and nothing else; raises
        SourceError on failure, and when the live state no longer matches the plan."""

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Plan, then (unless ``ctx.dry_run``) apply that plan."""
        plan = self.plan_restore(snap, ctx)
        return plan if ctx.dry_run else self.apply(plan, snap, ctx)

    def restore_options(self, raw: Mapping[str, Any]) -> Any:
        """``raw`` (``ctx.options``) validated as this kind's ``RestoreOptions``; an unknown key or a
        bad value raises UsageError naming the component and the keys it takes."""
        try:
            return self.RestoreOptions.model_validate(dict(raw))
        except ValidationError as exc:
            known = ", ".join(sorted(self.RestoreOptions.model_fields)) or "none"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise UsageError(
                f"component {self.name} ({self.kind}): bad restore option(s): {problems}",
                hint=f"Restore options of {self.kind}: {known}.",
            ) from None

    def redirect(self, where: Redirect) -> dict[str, Any]:
        """The restore options that send this component where ``where`` says (generic: a
        ``target_root`` for kinds that take one)."""
        if where.target_root and "target_root" in self.RestoreOptions.model_fields:
            return {"target_root": where.target_root}
        return {}

    def redirected_settings(self, settings: dict[str, Any], where: Redirect) -> dict[str, Any]:
        """The component's settings (its configuration table) as they are after a restore redirected by
        ``where``: what health checks connect to. Generic: unchanged."""
        return settings

    def restored_paths(self) -> list[str]:
        """Absolute paths this component puts back: secret references to files below them are read from
        below the target root when a restore goes there."""
        return []

    def sandbox_path(self, path: str) -> str | None:
        """Where :meth:`verify` puts the live absolute ``path`` (normalised, no symlinks in it) below its
        folder of the sandbox (``sandbox.root / name``), as a relative path; None when this component
        does not hold ``path``. Drills run the file checks (writable, tls, crontab, sqlite) there."""
        return None

    def safety_source(self, ctx: SourceContext) -> Source | None:
        """A source that captures the live state a restore with ``ctx`` (its restore options, ``force``)
        would replace, for the safety snapshot; None when it replaces nothing live (restored elsewhere,
        or refused without ``force``)."""
        return None

    def restore_hints(self) -> list[str]:
        """Extra command lines for RESTORE.md: how to restore this component somewhere else first."""
        if "target_root" in self.RestoreOptions.model_fields:
            return [
                f"# somewhere else first: safehold restore {self.name} --snapshot SNAP --target-root /tmp/check"
            ]
        return []

    # ------------------------------------------------------------------------------------ verify
    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Prove that the component restores, inside ``sandbox`` only (drills). Generic: every stored file
        reads back and verifies (decrypted, authenticated, hashed); kinds prove more."""
        started = time.monotonic()
        files, size = 0, 0
        for path in walk_files(snap):
            for block in snap.open_stream(path):
                size += len(block)
            files += 1
        check = Finding(
            self.name, "read", True, f"{files} stored file(s), {size} bytes read back and verified"
        )
        return VerifyReport(
            self.name, True, [check], {"files": files, "bytes": size}, time.monotonic() - started
        )

    def check_restored(self, root: Path, where: Where, ctx: SourceContext) -> list[Finding]:
        """Drills, after every component was verified: checks that read what this component restored
        together with what the others did (``root``: the sandbox; ``where``: live path -> restored copy,
        followed through restored symlinks by :func:`~safehold.sources.sandboxpath.locate`). Generic:
        none; ``system`` tests its nginx configuration and reads its certificates' expiry dates."""
        return []

    @classmethod
    def cleanup_scratch(cls, resource: dict[str, Any]) -> str:
        """Remove a resource that :meth:`verify` registered in a sandbox (a killed drill's scratch
        database or server); returns what was done. Kinds that register resources override it."""
        return f"nothing to clean for {resource.get('kind')}"

    # ------------------------------------------------------------------------------------ export
    @classmethod
    def export_layout(
        cls, tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part
    ) -> None:
        """Fill ``part`` with what the component's folder ``node`` becomes in an export at ``place``:
        entries and the restore notes. ``meta`` is the component's metadata as its backup returned it. It
        reads only trees (``tree``), never writes. Generic: the folder as plain files, with
        :attr:`export_note`."""
        default_layout(tree, node, place, part, cls.export_note)

    # ------------------------------------------------------------------------------------ inspect
    @classmethod
    def drift(cls, old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
        """Field-by-field changes between two snapshots' folders (relative path -> bytes) of a kind with
        ``compares_drift``; empty when nothing changed."""
        return []
