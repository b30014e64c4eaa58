"""Sources: what produces a component's data and restores it, one package per kind.

Glossary:

* **Kind** — the name a component's ``kind`` setting picks (``mysql``, ``saas/retell``); the one list of
  kinds is :mod:`.registry`, which maps each to its package's :class:`~.base.Source` subclass.
* **Source** — the typed contract (:mod:`.base`) every kind implements: ``Options`` (pydantic, the
  component's settings), ``RestoreOptions`` (what a restore may be told), ``backup`` and ``restore``.
  Operations call the contract, never a kind's modules.
* **Component folder** (:mod:`.component`) — what the engine hands a source: a writer at backup time, a
  verified reader at restore time. Drills' verification records and helpers: :mod:`.verify`.
* **Kind package** — ``sources/<kind>/`` owns everything about its kind: options, client (connection,
  queries, tools), backup, restore, verification, preflight, export layout. No module outside the package
  uses its private names.
* **Export layout** (:mod:`.export`) — what a kind's folder becomes in ``safehold export``; generic
  default: plain files, with the kind's ``export_note``.

Shared by several kinds: :mod:`.dbstats` (dump statistics of the database kinds), :mod:`.saas` (the API
client and plan/apply walk of the SaaS kinds).

Kinds: :mod:`.files`, :mod:`.mysql`, :mod:`.postgresql`, :mod:`.sqlite`, :mod:`.redis`, :mod:`.git`,
:mod:`.command`, :mod:`.system`, :mod:`.system_info` (``system-info``), :mod:`.saas.retell`
(``saas/retell``), :mod:`.saas.calcom` (``saas/calcom``).
"""
