"""The repository engine: everything about how snapshots are stored, in layers.

Glossary:

* **Blob** — one chunk of file content (data blob) or one encoded folder (tree blob), named by its keyed
  BLAKE3 hash, compressed and encrypted on its own.
* **Pack** — many blobs in one repository file with an encrypted header at its end; the **index** says
  which pack holds each blob.
* **Snapshot** — the root record of one backup: its tree, time, host, profile, components, summary.
* **Lock** — a lease a reader or writer holds on the repository and keeps renewing.

Format: :mod:`.crypto`, :mod:`.keys`, :mod:`.chunker`, :mod:`.pack`, :mod:`.index`, :mod:`.tree`,
:mod:`.snapshot`, :mod:`.lock`, :mod:`.repository` (opening, blob reads, snapshots).
Backup: :mod:`.archiver` (trees, byte strings, streams into blobs), :mod:`.sealer` (compress, encrypt,
verify), :mod:`.writer` (pack, upload, index), :mod:`.filescache`, :mod:`.fs` (reading the file system).
Restore: :mod:`.treewalk`, :mod:`.restorer`, :mod:`.extractor`, :mod:`.restorelinks`, :mod:`.verify`
(``restore --verify``). Check: :mod:`.checker`, :mod:`.verifier` (proving blobs).
Shared: :mod:`.helper` (helper processes), :mod:`.progress`, :mod:`.memtune`, :mod:`.util`.
"""
