"""Drill verification of the SaaS kinds: the export parses, holds exactly the objects its index lists
(``index.json``: ids per kind, each stored as ``<kind>/<file name of the id>``), no more, no fewer, and
every reference between its objects resolves to an object of the export (:mod:`.refs`, per kind)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from safehold.errors import SafeholdError
from safehold.sources.base import SourceContext
from safehold.sources.component import ComponentReader
from safehold.sources.saas.common import file_name
from safehold.sources.saas.refs import Objects, References
from safehold.sources.verify import Check, Sandbox, VerifyReport


def _files(snap: ComponentReader, folder: str = "") -> list[str]:
    out = []
    for name in snap.listdir(folder):
        path = f"{folder}/{name}" if folder else name
        try:
            out += _files(snap, path)
        except NotADirectoryError:
            out.append(path)
    return out


def _path(kind: str, ident: str) -> str:
    """Where the export keeps object ``ident`` of ``kind``: ``<kind>/<file>``, or ``<folder>/<file>`` for
    ids written as ``folder/key`` (Cal.com's)."""
    folder, _, key = ident.rpartition("/")
    return f"{folder or kind}/{file_name(key)}"


def verify_export(
    name: str,
    snap: ComponentReader,
    _sandbox: Sandbox,
    _ctx: SourceContext,
    references: Callable[[Objects], References] | None = None,
) -> VerifyReport:
    t0 = time.monotonic()
    checks: list[Check] = []
    counts: dict[str, int] = {}
    objects: Objects = {}
    try:
        index = json.loads(snap.read_bytes("index.json"))
        ids: dict[str, list[Any]] = index["ids"]
        expected = {_path(kind, str(i)): kind for kind, values in ids.items() for i in values}
        folders = {p.rsplit("/", 1)[0] for p in expected}
        present = [p for p in _files(snap) if p.endswith(".json") and p != "index.json"]
        missing = sorted(set(expected) - set(present))
        extra = sorted(p for p in present if p not in expected and p.rsplit("/", 1)[0] in folders)
        unreadable = []
        for path in sorted(set(expected) & set(present)):
            try:
                objects[path] = json.loads(snap.read_bytes(path))
                counts[expected[path]] = counts.get(expected[path], 0) + 1
            except ValueError:
                unreadable.append(path)
        for what, items in (("missing", missing), ("not in the index", extra), ("not JSON", unreadable)):
            if items:
                checks.append(
                    Check(
                        name,
                        "export",
                        False,
                        f"{len(items)} object file(s) {what}: {items[0]}",
                        lines=items[:50],
                    )
                )
        for path in present:  # files beside the indexed objects (agent versions) hold references too
            if path not in objects:
                try:
                    objects[path] = json.loads(snap.read_bytes(path))
                except ValueError:
                    pass
        recorded = {k: int(v) for k, v in (index.get("counts") or {}).items()}
        if recorded != {k: len(v) for k, v in ids.items()}:
            checks.append(Check(name, "counts", False, "the index's counts do not match its ids"))
    except (SafeholdError, ValueError, KeyError, TypeError, AttributeError) as exc:
        msg = (
            exc.message if isinstance(exc, SafeholdError) else f"index.json unreadable ({type(exc).__name__})"
        )
        checks.append(Check(name, "export", False, msg))
    if not checks:
        line = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no objects"
        checks.append(Check(name, "export", True, f"export parses: {line}, as recorded"))
    if references is not None and objects:
        refs = references(objects)
        if refs.dangling:
            checks.append(
                Check(
                    name,
                    "references",
                    False,
                    f"{len(refs.dangling)} dangling reference(s): {refs.dangling[0]}",
                    "A restore could not re-create these objects as they were; the export is incomplete.",
                    lines=refs.dangling[:50],
                )
            )
        else:
            note = f" ({'; '.join(refs.notes)})" if refs.notes else ""
            checks.append(Check(name, "references", True, f"{refs.resolved} reference(s) resolved{note}"))
    return VerifyReport(
        name, all(c.ok for c in checks), checks, {"counts": counts}, round(time.monotonic() - t0, 3)
    )
