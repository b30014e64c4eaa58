"""Restores: a snapshot to a folder, or components and whole servers from a profile snapshot.

Glossary:

* :mod:`.snapshot` — a snapshot (or a path inside it) to a target folder.
* :mod:`.profile` — components or the whole server: plan first, then execute the plan shown.
* :mod:`.latest` — what ``--snapshot latest`` means for a component, and why.
* :mod:`.thaw` — reading packs that sit in an archive storage class.
"""
