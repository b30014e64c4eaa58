"""``saas/retell``: Retell AI voice agents, their LLMs and conversation flows, and phone numbers.

Export layout under the component's folder (one JSON file per object, sorted keys)::

    agents/<agent_id>.json            latest version of each agent
    agent-versions/<agent_id>.json    all versions (a JSON array), when ``include_versions``
    llms/<llm_id>.json
    conversation-flows/<conversation_flow_id>.json
    phone-numbers/<e164>.json         '+' kept in the file name
    index.json                        what was exported: ids per kind, counts, list API used

Lists: the current ``POST /v2/list-agents`` (summaries, ``has_more`` / ``pagination_key``; each agent is
then fetched with ``GET /get-agent/{id}``) or, with ``list_api = "legacy"`` or when the v2 endpoint
answers 404 under ``"auto"``, the older ``GET /list-agents`` (a plain array of every version, paged by
``pagination_key`` + ``pagination_key_version`` until an empty page). LLMs, flows and phone numbers are
listed the same way and fetched one by one, so a file always holds the full object. Conversation flows
are exported when an agent's ``response_engine.type`` is ``conversation-flow``.

Modules: :mod:`.options`, :mod:`.client` (:class:`Exporter`: listing and fetching), :mod:`.source`
(:class:`RetellSource`), :mod:`.restore` (the object kinds a restore walks, id remapping, warnings).
"""

from safehold.sources.saas.retell.client import Exporter
from safehold.sources.saas.retell.options import DEFAULT_BASE_URL, RetellOptions
from safehold.sources.saas.retell.source import RetellSource

__all__ = ["DEFAULT_BASE_URL", "Exporter", "RetellOptions", "RetellSource"]
