"""The ``files`` kind in an export: a component's folder as one ``.tar.gz`` that extracts in place
(paths relative to ``/``), or, for the configuration component, as plain files with the ``.env`` renamed.

The original plan's layout, for the components the ``laravel`` preset writes: ``app`` ->
``app/application.tar.gz``, ``storage`` -> ``storage/app_storage.tar.gz``, ``config`` -> ``config/`` as
plain files (``.env`` as ``env.production``, mode 0600); any other ``files`` component ->
``<name>/<name>.tar.gz``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from safehold.engine.format.tree import DIR, Node
from safehold.sources.export import SECRET, TREE_TAR, Entry, ExportTree, Part, Place, join, plain

#: Components exported as one archive at a name of the original plan (others: ``<name>/<name>.tar.gz``).
ARCHIVES = {"app": "app/application.tar.gz", "storage": "storage/app_storage.tar.gz"}
#: The component exported as plain configuration files.
CONFIG = "config"
_RENAMES = {".env": "env.production", ".env.example": "env.example"}


def export_layout(tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part) -> None:
    paths = [str(p) for p in meta.get("paths", []) if isinstance(p, str)]
    if place.name == CONFIG:
        _config(tree, node, paths, part, place.top)
        return
    where = ", ".join(f"`{p}`" for p in paths) or "their original paths"
    dest = join(place.top, ARCHIVES.get(place.name, f"{place.name}/{place.name}.tar.gz"))
    part.entries.append(Entry(dest, TREE_TAR, node, mode=SECRET))
    part.notes.append(
        f"`{dest}`: {where}, with modes, owners, times, symlinks and hard links, stored relative to "
        f"`/`. Restore in place: `tar --xattrs --xattrs-include='*' -xzpf {dest} -C /` (as root, "
        "to keep owners); or extract into an empty folder first and move what you need."
    )


def _config(tree: ExportTree, node: Node, paths: list[str], part: Part, top: str) -> None:
    rels = [os.path.normpath(p).lstrip("/") for p in paths]
    found = [(r, n) for r in rels if (n := tree.find(node, r)) is not None]
    if found:
        base = posixpath.commonpath([r for r, _ in found]) if len(found) > 1 else found[0][0]
        if len(found) == 1 and found[0][1].type != DIR:
            base = posixpath.dirname(base)
    else:
        base, cur = "", node
        while len(kids := tree.children(cur)) == 1 and kids[0].type == DIR:
            cur = kids[0]
            base = join(base, cur.display_name)
        found = [(join(base, c.display_name), c) for c in tree.children(cur)]
    dest_root = join(top, CONFIG)
    for rel, n in found:
        sub = posixpath.relpath(rel, base) if base else rel
        sub = "" if sub == "." else _RENAMES.get(sub, sub)
        if n.type == DIR:
            for child in tree.children(n):
                cname = child.display_name
                plain(
                    tree, child, join(dest_root, sub, _RENAMES.get(cname, cname) if not sub else cname), part
                )
        else:
            plain(tree, n, join(dest_root, sub), part)
    origin = "/" + base
    env = posixpath.join(origin, ".env")
    part.notes.append(
        f"`{dest_root}/`: configuration files from `{origin}` as plain files "
        f"(`env.production` is `{env}`, `env.example` is `.env.example`). "
        f"Copy them back: `install -m 600 {dest_root}/env.production {env}` and "
        f"`cp -a` the rest to `{origin}`."
    )
