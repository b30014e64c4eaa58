"""The repository format: what each file of a repository holds and how it is sealed, written and read.

Glossary:

* :mod:`.crypto` — master keys, per-session keys, AEAD sealing of files and blobs.
* :mod:`.keys` — key files: the master secret wrapped by passphrase-derived keys (Argon2id/scrypt).
* :mod:`.sealer` — sealing a blob: compress, encrypt, verify (here or in helper processes).
* :mod:`.blobproof` — proving a blob: decrypt, decompress, re-hash (one blob, a pack, helper processes).
* :mod:`.pack` — many sealed blobs in one file with an encrypted header at its end.
* :mod:`.index` — which pack holds each blob, in a compact columnar form.
* :mod:`.indexfile` — index files: their encoding, and the column checks of their entries.
* :mod:`.tree` — tree nodes and their deterministic encoding; the path-safety rule for stored names.
* :mod:`.treewalk` — reading a snapshot's trees: find a path, walk, prefetch.
* :mod:`.snapshot` — the root record of one backup; what ``latest`` means.
* :mod:`.lock` — locks as leases that writers renew.
* :mod:`.repository` — opening a repository: keys, config, index, blob reads, snapshots, locks.
"""
