"""Where each part of a snapshot goes in an export: the original plan's archive layout.

:class:`Planner` reads the snapshot's trees and asks each component's kind, through the Source contract
(:meth:`~safehold.sources.base.Source.export_layout`, :mod:`safehold.sources.export`), what its folder
becomes: a list of :class:`Entry` — what to write where — plus the restore notes for ``RESTORE.md``. Each
kind's package documents its layout; a kind that has none of its own is copied as plain files.

Components whose kinds share an export folder (``export_folder``: two databases, two git repositories...)
each get a sub-folder named after the component (``database/<name>/...``). A component whose paths would
collide with another's is placed under ``components/<name>/`` instead. A component of a kind this safehold
does not know is copied as plain files to ``<name>/``. A snapshot without components
(``safehold backup PATH``) becomes ``files/files.tar.gz``.
"""

from __future__ import annotations

from typing import Any

from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, Node
from safehold.engine.format.treewalk import load_tree
from safehold.errors import ConfigError, SafeholdError
from safehold.sources import registry
from safehold.sources.base import Source
from safehold.sources.export import FOLDER, SECRET, TREE_TAR, Entry, Part, Place, join, plain

ROOT_FILES = ("metadata.json", "RESTORE.md", "checksums.txt")


def kind_class(kind: str) -> type[Source]:
    """The Source class of ``kind``; the contract's generic defaults for a kind this safehold does not know."""
    try:
        return registry.source_class(kind)
    except ConfigError:
        return Source


class Planner:
    """Plans the export of ``snap`` (trees are read from ``repo``; nothing is written). It is the
    :class:`~safehold.sources.export.ExportTree` the kinds read."""

    def __init__(self, repo: Repository, snap: Snapshot) -> None:
        self.repo = repo
        self.snap = snap
        self.root = Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))
        self.warnings: list[str] = []

    # ---- tree access -----------------------------------------------------------------------------
    def children(self, node: Node) -> list[Node]:
        if node.type != DIR or node.subtree is None:
            return []
        return load_tree(self.repo, node.subtree)

    def find(self, node: Node, rel: str) -> Node | None:
        for part in [p for p in rel.split("/") if p]:
            match = [c for c in self.children(node) if c.display_name == part]
            if not match:
                return None
            node = match[0]
        return node

    # ---- the whole snapshot ------------------------------------------------------------------------
    def plan(self) -> tuple[list[Part], dict[str, Node]]:
        """Every component's part, and the snapshot's own root files (metadata.json, RESTORE.md)."""
        top = {n.display_name: n for n in self.children(self.root)}
        root_files: dict[str, Node] = {
            k: top.pop(k) for k in ("metadata.json", "RESTORE.md") if k in top and top[k].type == FILE
        }
        comps: dict[str, Any] = self.snap.components
        parts: list[Part] = []
        if not comps:
            part = Part("files", "files")
            part.entries.append(Entry("files/files.tar.gz", TREE_TAR, self.root, mode=SECRET))
            paths = ", ".join(self.snap.paths) or "/"
            part.notes.append(
                f"`files/files.tar.gz`: the backed-up paths ({paths}), stored relative to `/`. "
                "Restore in place: `tar --xattrs --xattrs-include='*' -xzpf files/files.tar.gz -C /` "
                "(as root, to keep owners), or extract into an empty folder to pick files."
            )
            return [part], root_files
        kinds = {name: self.kind_of(name) for name in top if name in comps}
        folders: dict[str | None, int] = {}
        for kind in kinds.values():
            folder = kind_class(kind).export_folder
            folders[folder] = folders.get(folder, 0) + 1
        claimed = _Claims(ROOT_FILES)
        for name in sorted(top):
            node = top[name]
            if name not in comps:
                part = Part(name, "(not a component)")
                plain(self, node, join("snapshot-root", name), part)
                part.notes.append(f"`snapshot-root/{name}`: stored at the snapshot's root, copied as is.")
            else:
                kind = kinds[name]
                several = folders.get(kind_class(kind).export_folder, 0) > 1
                part = self.component(name, kind, node, several, "")
                if not claimed.fits(part):
                    part = self.component(name, kind, node, several, join("components", name))
                    if not claimed.fits(part):
                        raise SafeholdError(
                            f"component {name}: its files collide with each other or another component's"
                        )
            claimed.take(part)
            parts.append(part)
        for name, info in sorted(comps.items()):
            if name not in top and isinstance(info, dict) and info.get("status") == "ok":
                self.warnings.append(f"component {name} has no folder in the snapshot: not exported")
        return parts, root_files

    def kind_of(self, name: str) -> str:
        """The kind the snapshot records for component ``name`` (``unknown`` when it records none)."""
        info = self.snap.components.get(name)
        kind = info.get("kind") if isinstance(info, dict) else None
        return kind if isinstance(kind, str) and kind else "unknown"

    # ---- one component -----------------------------------------------------------------------------
    def component(self, name: str, kind: str, node: Node, several: bool, top: str) -> Part:
        cls = kind_class(kind)
        info = self.snap.components.get(name)
        meta = (info.get("metadata") if isinstance(info, dict) else None) or {}
        folder = cls.export_folder
        base = join(top, folder, name if several else "") if folder is not None else join(top, name)
        part = Part(name, kind, warning=cls.export_warning)
        cls.export_layout(
            self, node, meta if isinstance(meta, dict) else {}, Place(name, base, top, several), part
        )
        return part


class _Claims:
    """Paths already taken in the export: a part fits when none of its paths collides."""

    def __init__(self, reserved: tuple[str, ...]) -> None:
        self.files: set[str] = set(reserved)
        self.dirs: set[str] = set()

    @staticmethod
    def _parents(dest: str) -> list[str]:
        parts = dest.split("/")
        return ["/".join(parts[:i]) for i in range(1, len(parts))]

    def fits(self, part: Part) -> bool:
        """No file of ``part`` is named twice, is a parent of another entry (of this part or one taken
        before: a symlink that is a parent would be written through), or collides with a path taken."""
        files: set[str] = set()
        dirs: set[str] = set()
        for e in part.entries:
            if e.what == FOLDER:
                dirs.add(e.dest)
            elif e.dest in files:
                return False
            else:
                files.add(e.dest)
            dirs.update(self._parents(e.dest))
        return not (files & dirs or files & self.files or files & self.dirs or dirs & self.files)

    def take(self, part: Part) -> None:
        for e in part.entries:
            self.dirs.update(self._parents(e.dest))
            (self.dirs if e.what == FOLDER else self.files).add(e.dest)
