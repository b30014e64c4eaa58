"""Operations: what the commands do, on the engine, the configuration and the sources' contract. They
report through an injected reporter (never print), plan before anything destructive, and reach the
sources through their contract (:class:`~safehold.sources.base.Source`).

Glossary:

* **Profile backup** — every component of a profile into one snapshot, with ``metadata.json``,
  ``backup.log`` and ``RESTORE.md`` at its root (:mod:`.server_backup`, :mod:`.components`, :mod:`.guide`).
* **Restore plan** — what a restore will do, shown first and then executed as shown
  (:mod:`.server_restore`; a plain snapshot to a folder: :mod:`.restore`).
* **Safety snapshot** — what a restore is about to replace, taken into the same repository first.

Backup: :mod:`.backup`, :mod:`.server_backup`, :mod:`.components`, :mod:`.hooks`, :mod:`.guide`,
:mod:`.bootstrap`, :mod:`.wheels`. Restore: :mod:`.restore`, :mod:`.server_restore`, :mod:`.latest`,
:mod:`.health`, :mod:`.thaw`. Export: :mod:`.export`, :mod:`.export_layout`, :mod:`.export_sink`,
:mod:`.export_guide`. Inspect: :mod:`.diff`, :mod:`.doctor`, :mod:`.permissions`. Repositories:
:mod:`.copy`. Tour: :mod:`.demo`.
"""
