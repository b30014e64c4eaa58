"""Restore in the engine: a snapshot's tree back onto disk, safely, and read back to prove it.

Glossary:

* :mod:`.restorer` — plans and drives a restore: folders, files in batches, metadata.
* :mod:`.filecontents` — one batch of files' contents: packs read, blobs proven, files written into place.
* :mod:`.extractor` — reading a pack in runs and writing its blobs (in helper processes).
* :mod:`.restorelinks` — the last step: hard links, symlinks, special files.
* :mod:`.readback` — ``restore --verify`` and drills: read restored files back and compare them.
"""
