"""The ``mysql`` kind in an export: each database's dumps gzip-compressed (without MariaDB's sandbox first
line, so MySQL's client loads them too), its statistics as they are, and chosen tables as text under
``external-services/database-exports/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safehold.engine.format.tree import DIR, FILE, Node
from safehold.sources.export import ExportTree, Part, Place, gz, join, plain
from safehold.sources.mysql.sandbox import without_sandbox_line

#: Where chosen tables (``text_exports``) go, readable without a database.
TABLE_EXPORTS = "external-services/database-exports"


def export_layout(tree: ExportTree, node: Node, meta: Mapping[str, Any], place: Place, part: Part) -> None:
    base = place.base
    kids = tree.children(node)
    dbs = [k for k in kids if k.type == DIR]
    multi = len(dbs) > 1
    exports = join(place.top, TABLE_EXPORTS, place.name if place.several else "")
    for k in kids:
        if k.type != DIR:
            plain(tree, k, join(base, k.display_name), part)
    for db in dbs:
        dname = db.display_name
        dp = join(base, dname if multi else "")
        for f in tree.children(db):
            fname = f.display_name
            if fname in ("full_dump.sql", "schema_only.sql") and f.type == FILE:
                gz(f, join(dp, fname + ".gz"), part, transform=without_sandbox_line)
            elif fname == "tables" and f.type == DIR:
                plain(tree, f, join(exports, dname if multi else ""), part)
            else:
                plain(tree, f, join(dp, fname), part)
        part.notes.append(
            f"`{dp}/full_dump.sql.gz`: MySQL/MariaDB database `{dname}` (data, routines, triggers, "
            f"events). Restore: `mysql -e 'CREATE DATABASE {dname} CHARACTER SET utf8mb4'`, then "
            f"`gunzip < {dp}/full_dump.sql.gz | mysql {dname}` (MySQL's client or MariaDB's; with "
            f"MariaDB's, `mariadb --sandbox {dname}` also refuses client commands in the file). The "
            "first line MariaDB's dump tool writes (`/*M!999999\\- enable the sandbox mode */`, which "
            "MySQL's client rejects) is left out of the export; the repository keeps the dump as "
            f"written. `schema_only.sql.gz` is the schema alone; compare row counts and sizes with "
            f"`{dp}/table_statistics.txt`."
        )
    if any(e.dest.startswith(exports + "/") for e in part.entries):
        part.notes.append(f"`{exports}/`: chosen tables as tab-separated text, readable without a database.")
