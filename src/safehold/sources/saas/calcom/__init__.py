"""``saas/calcom``: Cal.com (API v2) event types, schedules, teams, memberships and webhooks.

Export layout under the component's folder (one JSON file per object, sorted keys)::

    event-types/<id>.json                       GET /event-types        (cal-api-version 2024-06-14)
    schedules/<id>.json                         GET /schedules          (cal-api-version 2024-06-11)
    teams/<teamId>.json                         GET /teams
    teams/<teamId>/event-types/<id>.json        GET /teams/{teamId}/event-types
    teams/<teamId>/memberships/<id>.json        GET /teams/{teamId}/memberships   (skip/take)
    webhooks/<id>.json                          GET /webhooks                     (skip/take)
    index.json                                  ids and counts per kind

Every response is the envelope ``{"status": "success", "data": ...}``. Cal.com allows 120 requests per
60 s per key and then blocks for 60 s, so a client-side limiter (``rate_limit_per_minute``) spaces the
requests, and a 429 waits for ``X-RateLimit-Reset-Default`` (Cal.com sends no ``Retry-After``).

Modules: :mod:`.options`, :mod:`.client` (:class:`CalApi`), :mod:`.source` (:class:`CalcomSource`: what
it exports), :mod:`.restore` (the object kinds a restore walks, request bodies).
"""

from safehold.sources.saas.calcom.client import CalApi
from safehold.sources.saas.calcom.options import DEFAULT_BASE_URL, CalcomOptions
from safehold.sources.saas.calcom.source import CalcomSource

__all__ = ["DEFAULT_BASE_URL", "CalApi", "CalcomOptions", "CalcomSource"]
