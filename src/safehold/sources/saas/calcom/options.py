"""Settings of a ``saas/calcom`` component and the API versions it speaks."""

from __future__ import annotations

from pydantic import Field

from safehold.sources.saas.common import SaasOptions

DEFAULT_BASE_URL = "https://api.cal.com/v2"
EVENT_TYPES_VERSION = "2024-06-14"
SCHEDULES_VERSION = "2024-06-11"


class CalcomOptions(SaasOptions):
    """Settings of a ``saas/calcom`` component."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Cal.com API v2 base URL (a self-hosted instance's /v2, a proxy or a test server).",
        examples=[DEFAULT_BASE_URL],
    )
    rate_limit_per_minute: int = Field(
        default=120,
        ge=1,
        le=10_000,
        description="Client-side limit of requests per 60 s (Cal.com allows 120 per API key).",
        examples=[120],
    )
    page_size: int = Field(
        default=250,
        ge=1,
        le=250,
        description="'take' of paginated lists (memberships, webhooks); the API's maximum is 250.",
        examples=[250],
    )
    include_teams: bool = Field(
        default=True,
        description="Export teams with their event types and memberships.",
        examples=[True],
    )
    include_webhooks: bool = Field(
        default=True,
        description="Export webhooks.",
        examples=[True],
    )
