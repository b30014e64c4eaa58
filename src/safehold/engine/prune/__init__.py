"""Keeping a repository's size in check: which snapshots to keep, and freeing what none of them uses.

Glossary:

* :mod:`.retention` — which snapshots of a group a policy keeps, and why.
* :mod:`.usage` — which index entries the snapshots use (one mark per entry).
* :mod:`.pruner` — the prune plan and its execution: delete unused packs, repack, rewrite the index.
* :mod:`.repack` — copying the kept blobs of mostly-unused packs into new ones, in bounded runs.
* :mod:`.leftovers` — temporary files killed runs left behind.
"""
