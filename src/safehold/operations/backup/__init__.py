"""Backups: file paths, components through the Source contract, and whole profiles.

Glossary:

* :mod:`.paths` — a backup session, and a backup of file paths into a snapshot.
* :mod:`.components` — components on the real engine: the writer/reader a source gets; a backup of
  components into one snapshot.
* :mod:`.profile` — a profile backup: hooks, every component, root files, off-site copies.
* :mod:`.hooks` — the configured before/after-backup programs.
* :mod:`.guide` — ``metadata.json``, ``backup.log``, ``RESTORE.md`` at a snapshot's root; restore order.
* :mod:`.bootstrap`, :mod:`.wheels` — what a bare host needs to install safehold, kept in the repository.
"""
