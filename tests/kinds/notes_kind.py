"""A source kind that exists only in the test suite (``test/notes``: the text files of one folder), and
the safehold CLI with it registered: ``[sys.executable, -P, tests/kinds/notes_kind.py, ARGS...]``
(:data:`NOTES_CLI`).

The kind is written the way a new kind would be: one class against the :class:`Source` contract, typed
options, plan/apply, a preflight; it relies on the contract's generic defaults for the rest (verify,
export layout, redirects other than ``target_root``). Nothing in ``operations/`` or ``cli/`` knows it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.errors import SourceError
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.component import ComponentReader, ComponentWriter

KIND = "test/notes"
NOTES_CLI = [sys.executable, "-P", str(Path(__file__).resolve())]


class NotesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Folder of *.txt notes.", examples=["/srv/notes"])


class NotesRestoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(default=None, description="Restore below this folder.")


class NotesSource(Source):
    kind: ClassVar[str] = KIND
    Options: ClassVar[type[BaseModel]] = NotesOptions
    RestoreOptions: ClassVar[type[BaseModel]] = NotesRestoreOptions
    restore_rank: ClassVar[int] = 35
    options: NotesOptions

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        notes = sorted(Path(self.options.path).glob("*.txt"))
        if not notes:
            raise SourceError(f"component {self.name}: no notes in {self.options.path}")
        for note in notes:
            out.add_bytes(note.name, note.read_bytes())
        return {"notes": len(notes)}

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        ok = Path(self.options.path).is_dir()
        return [Finding(self.name, "folder", ok, f"{self.options.path} {'is' if ok else 'is not'} a folder")]

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        ro: NotesRestoreOptions = self.restore_options(ctx.options)
        folder = Path(self.options.path)
        if ro.target_root:
            folder = Path(ro.target_root) / str(folder).lstrip("/")
        plan = RestorePlan(self.name, options=ro)
        for name in snap.listdir():
            verb = "overwrite" if (folder / name).exists() else "write"
            plan.actions.append(f"{verb} {folder / name}")
            plan.steps.append((name, folder / name))
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        for name, dest in plan.steps:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(snap.read_bytes(name))
        return RestoreReport(self.name, list(plan.actions))


if __name__ == "__main__":
    from safehold.cli.main import entry
    from safehold.engine.format import keys
    from safehold.sources import registry

    registry.register(KIND, "__main__:NotesSource")
    keys.use_kdf_params_for_new_keys(keys.CHEAPEST_KDF_PARAMS)
    entry()
