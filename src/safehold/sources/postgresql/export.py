"""The ``postgresql`` kind in an export: each database's custom-format dump as ``<db>.pgcustom``, the
globals (roles, tablespaces) gzip-compressed, statistics as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safehold.engine.format.tree import DIR, FILE, Node
from safehold.sources.export import PLAIN, SECRET, Entry, ExportTree, Part, Place, gz, join, plain


def export_layout(tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part) -> None:
    base = place.base
    kids = tree.children(node)
    dbs = [k for k in kids if k.type == DIR]
    multi = len(dbs) > 1
    for k in kids:
        if k.type == DIR:
            continue
        if k.display_name == "globals.sql" and k.type == FILE:
            gz(k, join(base, "globals.sql.gz"), part)
            part.notes.append(
                f"`{base}/globals.sql.gz`: roles and tablespaces; load first: "
                f"`gunzip < {base}/globals.sql.gz | psql -d postgres`."
            )
        else:
            plain(tree, k, join(base, k.display_name), part)
    for db in dbs:
        dname = db.display_name
        for f in tree.children(db):
            if f.display_name == "dump.pgcustom" and f.type == FILE:
                dest = join(base, dname + ".pgcustom")
                part.entries.append(Entry(dest, PLAIN, f, mode=SECRET))
                part.notes.append(
                    f"`{dest}`: PostgreSQL database `{dname}` in pg_dump's custom format. Restore: "
                    f"`createdb {dname} && pg_restore --no-owner -d {dname} {dest}` (or "
                    f"`pg_restore -f {dname}.sql {dest}` for plain SQL)."
                )
            else:
                plain(tree, f, join(base, dname if multi else "", f.display_name), part)
