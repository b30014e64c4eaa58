"""The ``files`` source (see the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.engine.format.tree import Node
from safehold.errors import SourceError
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks, unreadable
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.export import ExportTree, Part, Place
from safehold.sources.files import export as kind_export
from safehold.sources.verify import Sandbox, VerifyReport, verify_restored_tree


class FilesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        description="Absolute paths to back up.", examples=[["/var/www/app"]], min_length=1
    )
    excludes: list[str] = Field(
        default_factory=list,
        description="Gitignore-style patterns matched against absolute paths ('vendor/' matches at any depth).",
        examples=[["vendor/", "node_modules/", "/var/www/app/storage/framework/cache/"]],
    )
    one_file_system: bool = Field(
        default=False, description="Do not cross file-system boundaries.", examples=[True]
    )
    exclude_caches: bool = Field(
        default=True, description="Skip the contents of folders holding a CACHEDIR.TAG.", examples=[True]
    )
    exclude_if_present: list[str] = Field(
        default_factory=list,
        description="Skip the contents of folders holding a file with one of these names.",
        examples=[[".nobackup"]],
    )


class FilesRestoreOptions(BaseModel):
    """What a restore of a ``files`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(default=None, description="Restore below this folder instead of '/'.")


class FilesSource(Source):
    kind: ClassVar[str] = "files"
    Options: ClassVar[type[BaseModel]] = FilesOptions
    RestoreOptions: ClassVar[type[BaseModel]] = FilesRestoreOptions
    restore_rank: ClassVar[int] = 30
    keeps_file_times: ClassVar[bool] = True
    options: FilesOptions

    @classmethod
    def export_layout(
        cls, tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part
    ) -> None:
        kind_export.export_layout(tree, node, meta, place, part)

    def __init__(self, name: str, options: FilesOptions | Mapping[str, Any]) -> None:
        super().__init__(name, options)
        for p in self.options.paths:
            if not os.path.isabs(p):
                raise SourceError(f"component {name}: path {p!r} is not absolute")

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        missing = [p for p in self.options.paths if not os.path.lexists(p)]
        if missing:
            raise SourceError(f"component {self.name}: {', '.join(missing)} does not exist")
        for p in self.options.paths:
            rel = os.path.normpath(p).lstrip("/") or "."
            out.add_tree(
                rel, Path(p), excludes=self.options.excludes, one_file_system=self.options.one_file_system
            )
        return {"paths": list(self.options.paths), "excludes": list(self.options.excludes)}

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        for path in self.options.paths:
            why = unreadable(Path(path))
            if why:
                checks.problem("path", f"{path} {why}", "Fix the path in the component, or its permissions.")
            else:
                checks.passed("path", f"{path} exists and is readable")
        return checks.findings

    def secrets_note(self) -> str | None:
        if any(".env" in p or "letsencrypt" in p or "ssl" in p for p in self.options.paths):
            return "environment files or keys (.env, TLS private keys)"
        if self.name == "config":
            return "the application's .env (database, API and mail credentials)"
        return None

    # restore
    def restored_paths(self) -> list[str]:
        return [os.path.normpath(p) for p in self.options.paths]

    def sandbox_path(self, path: str) -> str | None:
        """``verify`` restores the stored folder below the sandbox as ``/`` (``/var/www/app`` at
        ``var/www/app``)."""
        for p in self.restored_paths():
            if path == p or path.startswith(p.rstrip("/") + "/"):
                return path.lstrip("/") or None
        return None

    def safety_source(self, ctx: SourceContext) -> Source | None:
        ro: FilesRestoreOptions = self.restore_options(ctx.options)
        root = ro.target_root or "/"
        live = [
            p for p in (os.path.join(root, p.lstrip("/")) for p in self.options.paths) if os.path.lexists(p)
        ]
        if not live:
            return None
        return FilesSource(self.name, self.options.model_copy(update={"paths": live}))

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: the folder restored below the sandbox, compared with the snapshot entry by entry
        (types, modes, links, sizes, times, owners as root, every byte)."""
        return verify_restored_tree(self, snap, sandbox, ctx)

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        ro: FilesRestoreOptions = self.restore_options(ctx.options)
        root = Path(ro.target_root or "/")
        plan = RestorePlan(component=self.name, options=ro)
        stored = [p for p in self.options.paths if snap.exists(os.path.normpath(p).lstrip("/"))]
        for p in stored:
            rel = os.path.normpath(p).lstrip("/")
            dest = root / rel
            plan.actions.append(
                f"restore {p} -> {dest}" + (" (exists: changed files are replaced)" if dest.exists() else "")
            )
            # a folder's contents go into dest; a single file goes into dest's folder
            target = dest if _is_dir(snap, rel) else dest.parent
            plan.steps.append((rel, target))
            # symlinks where folders go: never followed, refused (--force: replaced)
            plan.warnings += snap.in_the_way(rel, target, root=root, force=ctx.force)
        for p in set(self.options.paths) - set(stored):
            plan.warnings.append(f"{p} is not in this snapshot")
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings))
        root = Path(getattr(plan.options, "target_root", None) or "/")
        for rel, target in plan.steps:
            snap.restore_tree(rel, target, overwrite="always" if ctx.force else "if-changed", root=root)
        return report


def _is_dir(snap: ComponentReader, rel: str) -> bool:
    try:
        snap.listdir(rel)
    except NotADirectoryError:
        return False
    return True
