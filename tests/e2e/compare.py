"""Whole-server comparisons: the restored root against the reference copy, with the two kinds of
difference a restore may legitimately (or, for known open bugs, temporarily) leave.

* Folders *above* what was backed up (``var/www``, ``etc/php/8.3``...) are created by the restore, so
  their mtime is new: not a difference.
* ``KNOWN_BUG_ROOT_META``: the own metadata (mtime, owner, mode) of the folder a component or system item
  starts at is not restored — ``EngineComponentReader.restore_tree`` restores the *children* of the
  stored folder (src/safehold/operations/components.py). Reported; collected separately so the test
  fails on anything else and turns into an xfail only for this.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.server import APP_REL, HOST
from tests.helpers.treecompare import compare_trees

#: Folders above the backed-up items: only created by a restore.
ANCESTORS = {
    "etc",
    "etc/php",
    "etc/php/8.3",
    "etc/letsencrypt",
    "etc/letsencrypt/live",
    "etc/letsencrypt/archive",
    "etc/letsencrypt/renewal",
    "etc/systemd",
    "var",
    "var/www",
    "var/spool",
    "var/spool/cron",
}
#: Folders a component or system item starts at.
ITEM_ROOTS = {
    APP_REL,
    f"{APP_REL}/storage",
    f"{APP_REL}/config",
    f"{APP_REL}/docs",
    f"{APP_REL}/scripts",
    "etc/nginx",
    "etc/php/8.3/fpm",
    "etc/php/8.3/cli",
    "etc/supervisor",
    "etc/systemd/system",
    f"etc/letsencrypt/live/{HOST}",
    f"etc/letsencrypt/archive/{HOST}",
    "etc/letsencrypt/accounts",
    "etc/letsencrypt/renewal-hooks",
    # the parent of a single collected file (a crontab): sources/system.py sets its recorded metadata
    # and then writes the file into it, which changes its mtime again
    "var/spool/cron/crontabs",
}
KNOWN_BUG_ROOT_META = (
    "component/item root folders lose their own mtime/owner/mode on restore "
    "(operations/components.py EngineComponentReader.restore_tree restores only the children; "
    "sources/system.py restores a crontab's folder metadata before writing into it)"
)


def compare_server(ref: Path, root: Path, parts: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Compare ``ref/<a>`` with ``root/<b>`` for each ``(a, b)`` of ``parts`` (with owners); returns
    (unexpected differences, differences of the known root-metadata bug)."""
    unexpected: list[str] = []
    known: list[str] = []
    for a, b in parts:
        for line in compare_trees(ref / a, root / b, check_owner=True):
            rel, _, what = line.partition(": ")
            full = f"{a}/{rel}".strip("/") if rel != "." else a
            if full in ANCESTORS and what.startswith("mtime_ns"):
                continue
            if full in ITEM_ROOTS and what.startswith(("mtime_ns", "owner", "mode")):
                known.append(f"{full}: {what}")
                continue
            unexpected.append(f"{full}: {what}")
    return unexpected, known
