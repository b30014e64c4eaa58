"""Backup in the engine: file trees, byte strings and streams into blobs, packs and the index.

Glossary:

* :mod:`.chunker` — content-defined chunking (FastCDC, seeded per repository).
* :mod:`.filescache` — the local files cache that lets a backup skip unchanged files and folders.
* :mod:`.archiver` — trees, byte strings and streams into tree and data blobs.
* :mod:`.writer` — blobs sealed, packed, uploaded and indexed (the write order: packs, index, snapshot).
"""
