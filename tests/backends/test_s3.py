"""The S3 backend against moto's standalone server: conformance, options, cold storage, failures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from safehold.backends.base import Backend, FileType, Handle, TransientBackendError
from safehold.backends.registry import open_backend
from safehold.backends.s3 import S3Backend, from_url
from safehold.backends.wrappers import unwrap
from safehold.errors import BackendError, ColdStorageError, ConfigError
from tests.backends.conformance import BackendConformance, data_handle
from tests.backends.conftest import random_bucket

pytestmark = pytest.mark.s3


def client(opts: dict[str, Any]) -> Any:
    return boto3.client("s3", endpoint_url=opts["endpoint_url"], region_name="us-east-1")


class TestS3Conformance(BackendConformance):
    @pytest.fixture
    def make_backend(self, s3_options: dict[str, Any]) -> Iterator[Callable[[], Backend]]:
        made: list[S3Backend] = []

        def factory() -> Backend:
            b = from_url(f"s3://{random_bucket()}/some/prefix", dict(s3_options))
            made.append(b)
            return b

        yield factory
        for b in made:
            b.close()


@pytest.fixture
def s3(s3_options: dict[str, Any]) -> Iterator[S3Backend]:
    b = from_url(f"s3://{random_bucket()}/repo", dict(s3_options))
    b.create()
    yield b
    b.close()


def test_keys_and_prefix(s3: S3Backend, s3_options: dict[str, Any]) -> None:
    data = b"pack"
    h = data_handle(data)
    s3.save(h, data)
    s3.save(Handle(FileType.CONFIG), b"c")
    keys = sorted(o["Key"] for o in client(s3_options).list_objects_v2(Bucket=s3.bucket)["Contents"])
    assert keys == sorted(["repo/config", f"repo/data/{h.name[:2]}/{h.name}"])
    assert s3.properties.location == f"s3://{s3.bucket}/repo/"


def test_listing_ignores_foreign_keys(s3: S3Backend, s3_options: dict[str, Any]) -> None:
    c = client(s3_options)
    h = data_handle(b"x")
    s3.save(h, b"x")
    for key in [
        "repo/data/zz/abc",
        "repo/data/stray",
        "repo/index/sub/dir",
        "repo/index/bad.name",
        "other/index/aa",
    ]:
        c.put_object(Bucket=s3.bucket, Key=key, Body=b"?")
    assert [f.name for f in s3.list(FileType.DATA)] == [h.name]
    assert list(s3.list(FileType.INDEX)) == []


def test_storage_class_only_for_cold_data(s3_options: dict[str, Any]) -> None:
    b = from_url(f"s3://{random_bucket()}", {**s3_options, "storage_class": "DEEP_ARCHIVE"})
    b.create()
    c = client(s3_options)
    cold = Handle(FileType.DATA, "aa" * 32, cold=True)
    tree = Handle(FileType.DATA, "bb" * 32)
    index = Handle(FileType.INDEX, "cc" * 32, cold=True)  # the hint is ignored for anything but DATA
    for h in [cold, tree, index]:
        b.save(h, b"bytes")
    classes = {o["Key"]: o.get("StorageClass") for o in c.list_objects_v2(Bucket=b.bucket)["Contents"]}
    assert classes == {cold.path(): "DEEP_ARCHIVE", tree.path(): "STANDARD", index.path(): "STANDARD"}
    assert b.load(tree) == b"bytes"
    with pytest.raises(ColdStorageError) as e:
        b.load(cold)
    assert "thawed" in e.value.message
    assert "restore-object" in e.value.hint
    assert b.stat(cold).size == 5  # the size is readable without a thaw
    b.close()


@pytest.mark.parametrize("checksum", ["md5", "sha256"])
def test_checksums_and_sse(s3_options: dict[str, Any], checksum: str) -> None:
    b = from_url(f"s3://{random_bucket()}", {**s3_options, "checksum": checksum, "sse": "AES256"})
    b.create()
    data = os.urandom(1000)
    h = data_handle(data)
    b.save(h, data)
    assert b.load(h) == data
    head = client(s3_options).head_object(Bucket=b.bucket, Key=h.path())
    assert head["ServerSideEncryption"] == "AES256"
    b.close()


@pytest.mark.parametrize("checksum", ["md5", "sha256"])
def test_every_put_carries_a_checksum(s3_options: dict[str, Any], checksum: str) -> None:
    """moto does not verify checksums, so check what goes on the wire: the server-verified header."""
    import base64
    import hashlib

    b = from_url(f"s3://{random_bucket()}", {**s3_options, "checksum": checksum, "timeout": 10})
    b.create()
    sent: list[tuple[bytes, dict[str, str]]] = []

    def capture(request: Any, **kw: Any) -> None:
        body = request.body
        if not isinstance(body, bytes):
            pos = body.tell()
            body, _ = body.read(), body.seek(pos)
        sent.append(
            (body, {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
        )

    b._client.meta.events.register("before-send.s3.PutObject", capture)
    datas = [os.urandom(n) for n in (0, 1, 70_000)]
    for d in datas:
        b.save(data_handle(d), d)
        b.save(Handle(FileType.LOCK, "aa"), d)
    assert len(sent) == 6
    for body, headers in sent:
        if checksum == "md5":
            assert headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        else:
            assert (
                headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
            )
    assert [body for body, _ in sent[::2]] == datas
    b.close()


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (_client_error("SlowDown", 503), TransientBackendError, "retry"),
        (_client_error("InternalError", 500), TransientBackendError, "retry"),
        (_client_error("AccessDenied", 403), BackendError, "access denied"),
        (_client_error("NoSuchBucket", 404), BackendError, "bucket"),
        (_client_error("InvalidObjectState", 403), ColdStorageError, "archive"),
        (_client_error("BadDigest", 400), TransientBackendError, "damaged in transit"),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
            TransientBackendError,
            "connection",
        ),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), TransientBackendError, "connection"),
        (ConnectionResetError(104, "reset"), TransientBackendError, "connection"),
    ],
)
def test_error_mapping(
    s3: S3Backend, monkeypatch: pytest.MonkeyPatch, exc: Exception, kind: type, text: str
) -> None:
    def fail(**kw: Any) -> Any:
        raise exc

    monkeypatch.setattr(s3._client, "get_object", fail)
    with pytest.raises(BackendError) as e:
        s3.load(Handle(FileType.INDEX, "aa"))
    assert type(e.value) is kind
    assert text in e.value.message.lower()


def test_stopped_server_is_transient(aws_env: None) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = from_url(
        "s3://bucket/x", {"endpoint_url": f"http://127.0.0.1:{port}", "region": "us-east-1", "timeout": 2}
    )
    with pytest.raises(TransientBackendError):
        b.load(Handle(FileType.INDEX, "aa"))
    b.close()


def test_registry_opens_s3(s3_options: dict[str, Any]) -> None:
    b = open_backend(f"s3://{random_bucket()}/p", **s3_options, connections=3)
    inner = unwrap(b)
    assert isinstance(inner, S3Backend)
    assert b.properties.connections == 3
    assert inner._client.meta.config.max_pool_connections == 3
    b.create()
    b.save(Handle(FileType.CONFIG), b"c")
    assert b.exists()
    b.close()


@pytest.mark.parametrize(
    ("url", "opts", "message"),
    [
        ("s3://key:secret@bucket/x", {}, "bad S3 URL"),
        ("s3:///x", {}, "bad S3 URL"),
        ("s3://b", {"sse": "rot13"}, "unknown sse"),
        ("s3://b", {"sse_kms_key_id": "k"}, "needs sse"),
        ("s3://b", {"storage_class": "COLDEST"}, "unknown storage_class"),
        ("s3://b", {"checksum": "crc"}, "unknown checksum"),
        ("s3://b", {"password": "x"}, "unknown option"),
    ],
)
def test_bad_urls_and_options(url: str, opts: dict[str, Any], message: str, aws_env: None) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        from_url(url, opts)
    assert "secret" not in e.value.message
