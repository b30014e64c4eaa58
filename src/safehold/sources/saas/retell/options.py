"""Settings of a ``saas/retell`` component."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from safehold.sources.saas.common import SaasOptions

DEFAULT_BASE_URL = "https://api.retellai.com"


class RetellOptions(SaasOptions):
    """Settings of a ``saas/retell`` component."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Retell API base URL (change only for a proxy or a test server).",
        examples=[DEFAULT_BASE_URL],
    )
    list_api: Literal["auto", "v2", "legacy"] = Field(
        default="auto",
        description="Which list endpoints to use: 'v2' (POST /v2/list-agents ...), 'legacy' (GET "
        "/list-agents ...), or 'auto' (v2, falling back to legacy when v2 answers 404).",
        examples=["auto"],
    )
    page_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Items requested per page of a list call (the service may return fewer).",
        examples=[1000],
    )
    include_versions: bool = Field(
        default=True,
        description="Also export every version of each agent to agent-versions/<agent_id>.json.",
        examples=[True],
    )
