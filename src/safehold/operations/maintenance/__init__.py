"""Keeping repositories: which snapshots stay, freeing space, repairs, off-site copies.

Glossary:

* :mod:`.forget` — ``forget``, ``pin``, ``unpin``: retention policies applied per group of snapshots.
* :mod:`.prune` — ``prune``: free the space no snapshot references (engine: :mod:`safehold.engine.prune`).
* :mod:`.repair` — ``repair index`` / ``repair snapshots`` under an exclusive lock.
* :mod:`.copy` — copying snapshots to another repository (off-site copies).
"""
