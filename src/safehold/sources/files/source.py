"""The ``files`` source (see the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.errors import SourceError
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, Source, SourceContext


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


class FilesSource(Source):
    kind: ClassVar[str] = "files"
    Options: ClassVar[type[BaseModel]] = FilesOptions
    options: FilesOptions

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

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        root = Path(ctx.options.get("target_root") or "/")
        report = RestoreReport(component=self.name)
        stored = [p for p in self.options.paths if snap.exists(os.path.normpath(p).lstrip("/"))]
        for p in stored:
            rel = os.path.normpath(p).lstrip("/")
            dest = root / rel
            report.actions.append(
                f"restore {p} -> {dest}" + (" (exists: changed files are replaced)" if dest.exists() else "")
            )
            if not ctx.dry_run:
                # a folder's contents go into dest; a single file goes into dest's folder
                target = dest if _is_dir(snap, rel) else dest.parent
                snap.restore_tree(rel, target, overwrite="always" if ctx.force else "if-changed")
        for p in set(self.options.paths) - set(stored):
            report.warnings.append(f"{p} is not in this snapshot")
        return report


def _is_dir(snap: ComponentReader, rel: str) -> bool:
    try:
        snap.listdir(rel)
    except NotADirectoryError:
        return False
    return True
