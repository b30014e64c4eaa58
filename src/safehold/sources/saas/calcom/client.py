"""The Cal.com API v2 as the export and the restore use it (:class:`CalApi`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from safehold.errors import SourceError
from safehold.sources.saas.http import ApiClient


class CalApi:
    """Cal.com calls: the envelope unwrapped, the ``cal-api-version`` header set per endpoint."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        *,
        version: str | None = None,
        params: Mapping[str, str | int | bool] | None = None,
        json: Any = None,
        allow_404: bool = False,
    ) -> Any:
        """The ``data`` of the envelope (None for an allowed 404)."""
        headers = {"cal-api-version": version} if version else None
        body = self.client.request(
            method, path, params=params, json=json, headers=headers, allow_404=allow_404
        )
        if body is None and allow_404:
            return None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise SourceError(
                f"Cal.com API: {method} {path} answered without the success envelope",
                hint="Check the base_url setting: it must end in /v2 of a Cal.com API.",
            )
        return body["data"]

    def pages(self, path: str, take: int) -> Iterator[dict[str, Any]]:
        """Every item of a skip/take list."""
        skip = 0
        while True:
            data = self.call("GET", path, params={"skip": skip, "take": take})
            if not isinstance(data, list):
                raise SourceError(f"Cal.com API: GET {path} returned an unexpected shape (not a list)")
            yield from data
            if len(data) < take:
                return
            skip += take


def as_list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list):
        raise SourceError(f"Cal.com API: GET {path} returned an unexpected shape (not a list)")
    return data
