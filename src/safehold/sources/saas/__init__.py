"""SaaS configuration sources: export a service's configuration through its API, restore it back.

Glossary:

* **Export** — every object of the service written to its own JSON file (sorted keys, 2-space indent,
  trailing newline) under the component's folder, plus an ``index.json`` of what was exported. Stable
  bytes for unchanged objects, so snapshots deduplicate and diffs read field by field.
* **Plan** — at restore, each saved object is compared with the live one after the fields the API treats
  as read-only are stripped: ``unchanged``, ``update`` (with the differing fields as dotted paths),
  ``create`` (the live object is gone: 404) or ``missing`` (gone, and the documented API cannot
  re-create it). ``--dry-run`` stops at the plan.
* **Apply** — the plan executed in dependency order; a re-created object gets a new id and every
  reference to it (agent -> LLM, phone number -> agent, event type -> schedule) is remapped.
* **Write-only field** — a value the API accepts but never returns (Retell's SIP ``auth_password``): it
  cannot be backed up, and the restore report names it.

Modules: :mod:`.source` (:class:`~.source.SaasSource`, what both kinds share as sources: client, export
bookkeeping, preflight probe, drift, drills, plan and apply), :mod:`.http` (the shared API client: auth,
retries, rate limits), :mod:`.common` (JSON files, field diffs, the generic plan/apply walk), :mod:`.diff`
(:func:`diff_exports` for ``safehold diff``), :mod:`.verify` (drills), and the kind packages :mod:`.retell` (``saas/retell``) and :mod:`.calcom` (``saas/calcom``).
"""
