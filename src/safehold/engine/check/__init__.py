"""Integrity: finding what is wrong with a repository, and repairing what can be repaired.

Glossary:

* :mod:`.checker` — every finding collected (structure, index, trees, optionally all data).
* :mod:`.repair` — rebuild the index from pack headers; rewrite snapshots without what is lost.
"""
