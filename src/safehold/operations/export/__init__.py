"""Exports: a snapshot as plain files, for people and tools without safehold.

Glossary:

* :mod:`.snapshot` — ``safehold export``: the operation.
* :mod:`.layout` — where each part of a snapshot goes in the export.
* :mod:`.sink` — where the bytes go: a folder, or one tar stream (plain, gzip, zstandard).
* :mod:`.guide` — the export's ``RESTORE.md`` and ``metadata.json``.
"""
