"""Google Cloud Storage through its S3-compatible XML API (``gs://``): the conformance suite against the
moto server under the gs scheme (endpoint override), the HMAC key from GS_* (never the AWS variables),
GCS's storage classes, and a clear error without a key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from safehold.backends.base import Backend
from safehold.backends.registry import open_backend
from safehold.backends.s3 import S3Backend, from_gs_url
from safehold.backends.wrappers import unwrap
from safehold.errors import ConfigError
from tests.backends.conformance import BackendConformance, data_handle
from tests.backends.conftest import random_bucket

pytestmark = pytest.mark.s3


@pytest.fixture
def gs_options(s3_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("GS_ACCESS_KEY_ID", "GOOGTESTKEY")
    monkeypatch.setenv("GS_SECRET_ACCESS_KEY", "gs-test-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AWS-KEY-MUST-NOT-BE-USED")
    return {"endpoint_url": s3_server}


class TestGCSConformance(BackendConformance):
    @pytest.fixture
    def make_backend(self, gs_options: dict[str, Any]) -> Iterator[Callable[[], Backend]]:
        made: list[S3Backend] = []

        def factory() -> Backend:
            b = from_gs_url(f"gs://{random_bucket()}/some/prefix", dict(gs_options))
            made.append(b)
            return b

        yield factory
        for b in made:
            b.close()


def test_gs_url_signs_with_the_hmac_key_and_names_itself(gs_options: dict[str, Any]) -> None:
    b = open_backend(f"gs://{random_bucket()}/x", **gs_options)
    inner = unwrap(b)
    assert isinstance(inner, S3Backend)
    assert b.properties.location.startswith("gs://") and b.properties.location.endswith("/x/")
    sent: list[str] = []
    inner._client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.headers["Authorization"].decode())
    )
    b.create()
    b.save(data_handle(b"x"), b"x")
    assert sent and all("Credential=GOOGTESTKEY/" in a for a in sent)
    assert "gs-test-secret" not in repr(inner.properties)
    b.close()


def test_defaults_point_at_google(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("GS_SECRET_ACCESS_KEY", "s")
    b = from_gs_url("gs://bucket/pre", {})
    assert b._client.meta.endpoint_url == "https://storage.googleapis.com"
    assert b._settings["region"] == "auto" and b._settings["path_style"] is True
    b.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"storage_class": "GLACIER"}, "unknown storage_class 'GLACIER' for gs://"),
        ({"sse": "AES256"}, "unknown option for gs backends: sse"),
    ],
)
def test_gs_options_are_checked(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("GS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("GS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(ConfigError) as e:
        from_gs_url("gs://bucket", options)
    assert message in e.value.message
    from_gs_url("gs://bucket", {"storage_class": "ARCHIVE"}).close()


def test_without_a_key_the_error_says_which_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    with pytest.raises(ConfigError) as e:
        from_gs_url("gs://bucket/p", {})
    assert "GS_ACCESS_KEY_ID and GS_SECRET_ACCESS_KEY" in e.value.message
