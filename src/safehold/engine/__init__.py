"""The repository engine: everything about how snapshots are stored, in layers (lowest first).

Glossary:

* **Blob** — one chunk of file content (data blob) or one encoded folder (tree blob), named by its keyed
  BLAKE3 hash, compressed and encrypted on its own.
* **Pack** — many blobs in one repository file with an encrypted header at its end; the **index** says
  which pack holds each blob.
* **Snapshot** — the root record of one backup: its tree, time, host, profile, components, summary.
* **Lock** — a lease a reader or writer holds on the repository and keeps renewing.

Layers (``tests/test_architecture.py`` keeps imports going one way, each layer may use the ones above it):

* shared, here: :mod:`.helper` (helper processes and their framing), :mod:`.progress` (the reporting
  interface), :mod:`.memtune`, :mod:`.util`;
* :mod:`.format` — the repository's files and how to read them: crypto, keys, blobs, packs, index, trees,
  snapshots, locks, the :class:`~.format.repository.Repository`;
* :mod:`.fs` — the file system: metadata, patterns, selection, descriptor-based folders;
* :mod:`.backup` — trees, byte strings and streams into blobs; :mod:`.restore` — a snapshot's tree back to
  disk, and reading it back to verify;
* :mod:`.prune` — retention, what is used, deleting and repacking; :mod:`.check` — integrity checks and
  repairs.
"""
