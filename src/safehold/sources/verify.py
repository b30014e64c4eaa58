"""Verification against a sandbox, for drills: the part of the Source contract that proves a component
restores, without touching anything the component backs up.

* :class:`Sandbox` — what a drill hands a source: an empty private folder (``root``) to restore files
  into, the scratch servers to load dumps into (``db``: host, port, user, password reference of the
  drill's scratch MySQL/PostgreSQL server for the component's kind; empty: the component's own server),
  and the prefix scratch names begin with. Everything a source creates outside ``root`` (a scratch
  database, a redis-server it starts) is *registered* first (:meth:`Sandbox.register`): the registry is a
  file below ``root``, appended and synced before the resource exists, so that a drill killed part-way is
  cleaned up later by the next drill or ``drill --cleanup`` (:func:`cleanup_resource` through the kind's
  ``cleanup_scratch``).
* :class:`VerifyReport` — what the source proved: one :class:`Check` per thing checked.
* :func:`verify_restored_tree` — restore the component's whole folder below ``root`` and compare it with the
  snapshot: every entry, type, mode, symlink target, size, time, owner (as root) and every byte. The
  ``files`` and ``system`` kinds verify this way; kinds without their own ``verify`` read every stored file
  back (the contract's default).
"""

from __future__ import annotations

import os
import time

from safehold.errors import SafeholdError
from safehold.sources.base import REGISTRY, Check, Sandbox, Source, SourceContext, VerifyReport, registered
from safehold.sources.component import ComponentReader

#: The records of a verification are the contract's (:mod:`.base`); kinds and drills import them here.
__all__ = ["REGISTRY", "Check", "Sandbox", "VerifyReport", "registered", "verify_restored_tree"]


def verify_restored_tree(
    source: Source, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext
) -> VerifyReport:
    """Restore the component's folder below the sandbox and compare it with the snapshot."""
    t0 = time.monotonic()
    target = sandbox.folder(source.name)
    checks: list[Check] = []
    try:
        snap.restore_tree("", target)
        problems = snap.verify_tree("", target)
    except (SafeholdError, OSError) as exc:
        msg = exc.message if isinstance(exc, SafeholdError) else f"{type(exc).__name__}: {exc}"
        checks.append(Check(source.name, "restore", False, f"restore into the sandbox failed: {msg}"))
    else:
        files = sum(len(f) for _, _, f in os.walk(target))
        if problems:
            checks.append(
                Check(
                    source.name,
                    "files",
                    False,
                    f"{len(problems)} difference(s): {problems[0]}",
                    lines=problems[:50],
                )
            )
        else:
            checks.append(Check(source.name, "files", True, f"{files} file(s) identical to the snapshot"))
    return VerifyReport(
        source.name, all(c.ok for c in checks), checks, duration=round(time.monotonic() - t0, 3)
    )
