"""Whole-server comparisons: the restored root against the reference copy.

Folders *above* what was backed up (``var/www``, ``etc/php/8.3``...) are created by the restore, so their
mtime is new: not a difference. Everything else — including the own metadata of each component's folder —
must be identical.
"""

from __future__ import annotations

from pathlib import Path

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


def compare_server(ref: Path, root: Path, parts: list[tuple[str, str]]) -> list[str]:
    """Compare ``ref/<a>`` with ``root/<b>`` for each ``(a, b)`` of ``parts`` (with owners); returns every
    difference."""
    unexpected: list[str] = []
    for a, b in parts:
        for line in compare_trees(ref / a, root / b, check_owner=True):
            rel, _, what = line.partition(": ")
            full = f"{a}/{rel}".strip("/") if rel != "." else a
            if full in ANCESTORS and what.startswith("mtime_ns"):
                continue
            unexpected.append(f"{full}: {what}")
    return unexpected
