"""Reading a repository whose data packs sit in an archive storage class (S3 GLACIER, DEEP_ARCHIVE).

Packs of file contents may go cold (``storage_class``); trees, index, snapshots and keys never do, so
listing and planning work at once. Reading a cold pack needs a *thaw*: a request for a temporary readable
copy (S3 RestoreObject with a retrieval tier and a number of days), which becomes readable after minutes to
days. :func:`prepare` makes sure the packs an operation will read are readable before it starts:

* packs in an archive class are found with one listing, and only those are asked for their thaw state;
* without ``request`` it stops with a ColdStorageError that says how many packs are cold and how long a
  thaw takes per tier (nothing has been written or read yet);
* with ``request`` it asks for each pack not yet thawed or being thawed (asking again is harmless), then
  either waits (``wait``: polls until every pack is readable, saying how many are left) or stops with a
  ColdStorageError saying when to run the same command again, which then goes on where it stopped.

A backend without archive classes (local, SFTP, GCS, whose colder classes read at once) makes it a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from safehold.backends.base import FileType, Handle, SupportsThaw, ThawState
from safehold.backends.wrappers import unwrap
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE
from safehold.engine.format.treewalk import find_node, walk
from safehold.errors import ColdStorageError, NotFound, UsageError

TIERS = ("Expedited", "Standard", "Bulk")

#: How long a thaw takes until the copy is readable (AWS's documented times per class and tier).
DURATIONS: dict[str, dict[str, str]] = {
    "GLACIER": {"Expedited": "1-5 minutes", "Standard": "3-5 hours", "Bulk": "5-12 hours"},
    "DEEP_ARCHIVE": {"Standard": "within 12 hours", "Bulk": "within 48 hours"},
}
#: Seconds between two looks at the packs still being thawed.
POLL_SECONDS = {"Expedited": 30.0, "Standard": 300.0, "Bulk": 900.0}


@dataclass(frozen=True)
class ThawOptions:
    """``--thaw`` (request), ``--thaw-tier``, ``--thaw-days``, ``--wait``."""

    request: bool = False
    tier: str = "Standard"
    days: int = 7
    wait: bool = False


def thawing_backend(repo: Repository) -> SupportsThaw | None:
    inner = unwrap(repo.backend)
    return inner if isinstance(inner, SupportsThaw) else None


def eta(classes: list[str], tier: str) -> str:
    """``'GLACIER: 3-5 hours'`` for the classes involved at ``tier``."""
    return ", ".join(f"{c}: {DURATIONS.get(c, {}).get(tier, 'unknown')}" for c in classes)


def _all_tiers(classes: list[str]) -> str:
    return "; ".join(
        f"{c}: " + ", ".join(f"{t} {d}" for t, d in DURATIONS.get(c, {}).items()) for c in classes
    )


def packs_for(repo: Repository, snap: Snapshot, paths: list[str] | None = None) -> set[str]:
    """The data packs holding the file contents below ``paths`` of ``snap`` (all of it when None);
    paths that are not in the snapshot are left out (the operation itself reports them)."""
    repo.load_index()
    root = bytes.fromhex(snap.tree)
    blobs: list[bytes] = []
    for path in paths if paths is not None else [""]:
        try:
            node = find_node(repo, root, path)
        except NotFound:
            continue
        if node.type == FILE:
            blobs += node.content
        elif node.type == DIR and node.subtree is not None:
            blobs += [b for _rel, n in walk(repo, node.subtree) if n.type == FILE for b in n.content]
    return {loc.pack_id.hex() for loc in repo.index.lookup_many(blobs) if loc is not None}


def prepare(
    repo: Repository,
    packs: set[str] | Callable[[], set[str]],
    opts: ThawOptions,
    report: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Make sure every pack in ``packs`` can be read (see the module docstring). Raises ColdStorageError
    when some cannot be yet, UsageError for a tier the storage class does not offer. ``packs`` may be a
    function that finds them (e.g. ``lambda: packs_for(...)``): it is called only when the storage holds
    archived packs at all, so a local or SFTP repository does not walk the snapshot's trees for nothing."""
    be = thawing_backend(repo)
    if be is None:
        return
    cold = be.archived(FileType.DATA)
    if not cold:
        return
    if callable(packs):
        packs = packs()
    archived = {n: c for n, c in cold.items() if n in packs}
    states: dict[str, ThawState] = {n: be.thaw_state(Handle(FileType.DATA, n)) for n in archived}
    pending = sorted(n for n, s in states.items() if not s.readable)
    if not pending:
        return
    classes = sorted({states[n].storage_class for n in pending})
    if not opts.request:
        raise ColdStorageError(
            f"{len(pending)} of the {len(packs)} data packs this needs are in {'/'.join(classes)} storage and "
            "cannot be read before they are restored (not damage); nothing was read or written",
            hint="Add --thaw to request them (--thaw-tier Expedited|Standard|Bulk, --thaw-days N; "
            f"{_all_tiers(classes)}) and --wait to wait for them, or run the same command again once they "
            "are readable: it goes on where it stopped.",
        )
    bad = [c for c in classes if opts.tier not in DURATIONS.get(c, {opts.tier: ""})]
    if bad:
        raise UsageError(
            f"{'/'.join(bad)} offers no {opts.tier} retrieval",
            hint=f"Use --thaw-tier {' or '.join(DURATIONS[bad[0]])}.",
        )
    requested = 0
    for name in pending:
        if states[name].state == "archived":
            states[name] = be.thaw(Handle(FileType.DATA, name), tier=opts.tier, days=opts.days)
            requested += 1
    pending = [n for n in pending if not states[n].readable]
    report(
        f"requested {requested} pack(s) from {'/'.join(classes)} storage ({opts.tier} retrieval, readable for "
        f"{opts.days} days); {len(pending)} not readable yet ({eta(classes, opts.tier)})"
    )
    if pending and not opts.wait:
        raise ColdStorageError(
            f"{len(pending)} data pack(s) are being restored from {'/'.join(classes)} storage; nothing was "
            "read or written yet",
            hint=f"They become readable {eta(classes, opts.tier)} after the request. Run the same command "
            "again then (it goes on where it stopped), or add --wait to wait for them.",
        )
    while pending:
        sleep(POLL_SECONDS.get(opts.tier, 300.0))
        pending = [n for n in pending if not be.thaw_state(Handle(FileType.DATA, n)).readable]
        report(f"{len(archived) - len(pending)} of {len(archived)} cold pack(s) readable")
