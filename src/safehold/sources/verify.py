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

from safehold.sources.base import REGISTRY, Check, Sandbox, VerifyReport, registered, verify_restored_tree

__all__ = ["REGISTRY", "Check", "Sandbox", "VerifyReport", "registered", "verify_restored_tree"]
