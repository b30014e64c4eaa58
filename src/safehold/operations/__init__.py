"""Operations: what the commands do, on the engine, the configuration and the sources' contract. They
report through an injected reporter (never print), plan before anything destructive, and reach the
sources through their contract (:class:`~safehold.sources.base.Source`) without naming a kind.

Glossary:

* **Profile backup** — every component of a profile into one snapshot, with ``metadata.json``,
  ``backup.log`` and ``RESTORE.md`` at its root (:mod:`.backup.profile`).
* **Restore plan** — what a restore will do, shown first and then executed as shown
  (:mod:`.restore.profile`; a plain snapshot to a folder: :mod:`.restore.snapshot`).
* **Safety snapshot** — what a restore is about to replace, taken into the same repository first.

Grouped by feature (``tests/test_architecture.py`` keeps imports between the groups going one way, in this
order): :mod:`.maintenance` (forget, prune, repair, copy), :mod:`.backup`, :mod:`.restore`,
:mod:`.export`, :mod:`.inspect` (diff, doctor), :mod:`.observe` (status, drills, reports, metrics, the
audit log), :mod:`.schedule` (timers and cron jobs), and :mod:`.demo`, the tour that uses them all.
"""
