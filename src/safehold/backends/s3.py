"""A repository in an S3 bucket (AWS or any S3-compatible store), with boto3.

URL: ``s3://bucket[/prefix]``. Credentials come from the standard AWS chain (environment, shared
config/credentials files and ``profile``, instance or container roles); none are ever put in the URL.

Options (see :func:`from_url`): ``endpoint_url`` (S3-compatible stores), ``region``, ``path_style``
(path-style addressing, which most self-hosted stores need), ``sse`` (``AES256`` or ``aws:kms``, with
``sse_kms_key_id``), ``storage_class`` (applied only to data packs the engine marks cold, see
"Storage classes" in :mod:`safehold.backends.base`), ``checksum`` (``md5``, the default, sends Content-MD5;
``sha256`` sends x-amz-checksum-sha256; either way the server verifies the body before storing it),
``connections`` (HTTP pool size and advised parallelism, default 8), ``profile``, ``timeout``.

Object writes are atomic in S3, so a save is one PUT. Reading an object in an archive class raises
ColdStorageError at once (never waits). Throttling, 5xx answers and connection failures raise
TransientBackendError; botocore's own retries are switched off (the retry wrapper owns retrying).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session

from safehold.backends._util import (
    check_handle,
    check_options,
    check_scratch_name,
    is_valid_name,
    resolve_range,
)
from safehold.backends.base import (
    ARCHIVE_CLASSES,
    BackendProperties,
    FileInfo,
    FileType,
    Handle,
    ThawState,
    TransientBackendError,
)
from safehold.errors import BackendError, ColdStorageError, ConfigError, NotFoundError

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "GLACIER_IR",
        "DEEP_ARCHIVE",
        "REDUCED_REDUNDANCY",
    }
)
#: Google Cloud Storage's classes (all of them read at once, with retrieval fees for the colder ones).
GCS_STORAGE_CLASSES = frozenset({"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"})
GCS_ENDPOINT = "https://storage.googleapis.com"
GCS_KEY_ENV = ("GS_ACCESS_KEY_ID", "GS_SECRET_ACCESS_KEY")
SSE_MODES = frozenset({"AES256", "aws:kms"})
CHECKSUMS = frozenset({"md5", "sha256"})

_TRANSIENT_CODES = {
    "500",
    "502",
    "503",
    "504",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "OperationAborted",
}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Backend:
    """Repository files under ``prefix`` in ``bucket``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        storage_class: str | None = None,
        checksum: str = "md5",
        connections: int = 8,
        profile: str | None = None,
        timeout: float = 60.0,
        scheme: str = "s3",
        credentials: tuple[str, str] | None = None,
    ) -> None:
        classes = GCS_STORAGE_CLASSES if scheme == "gs" else STORAGE_CLASSES
        if sse is not None and sse not in SSE_MODES:
            raise ConfigError(f"unknown sse {sse!r}", hint=f"Use one of: {', '.join(sorted(SSE_MODES))}.")
        if sse_kms_key_id and sse != "aws:kms":
            raise ConfigError("sse_kms_key_id needs sse='aws:kms'", hint="Set sse to aws:kms.")
        if storage_class is not None and storage_class not in classes:
            raise ConfigError(
                f"unknown storage_class {storage_class!r} for {scheme}://",
                hint=f"Use one of: {', '.join(sorted(classes))}.",
            )
        if checksum not in CHECKSUMS:
            raise ConfigError(f"unknown checksum {checksum!r}", hint="Use md5 or sha256.")
        self._settings: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region": region,
            "path_style": path_style,
            "sse": sse,
            "sse_kms_key_id": sse_kms_key_id,
            "storage_class": storage_class,
            "checksum": checksum,
            "connections": connections,
            "profile": profile,
            "timeout": timeout,
            "scheme": scheme,
            "credentials": credentials,
        }
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.region = region
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.storage_class = storage_class
        self.checksum = checksum
        self._properties = BackendProperties(
            location=f"{scheme}://{bucket}/{self.prefix}",
            connections=max(1, connections),
            local=False,
            extra={"storage_class": storage_class or "STANDARD"},
        )
        config = botocore.config.Config(
            max_pool_connections=max(1, connections),
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"total_max_attempts": 1},
            connect_timeout=timeout,
            read_timeout=timeout,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        core = botocore.session.Session(profile=profile)
        core.register_component("data_loader", _shared_loader())
        session = boto3.session.Session(botocore_session=core, region_name=region)
        key_id, secret = credentials if credentials else (None, None)
        self._client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=config,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        self._lock = threading.Lock()

    @property
    def properties(self) -> BackendProperties:
        return self._properties

    # -- helpers --------------------------------------------------------------------------------------

    def _key(self, h: Handle) -> str:
        check_handle(h)
        return self.prefix + h.path()

    def _error(self, e: Exception, doing: str, h: Handle | None = None) -> BackendError:
        """Map a botocore exception to the exception tree."""
        where = self._properties.location
        if isinstance(e, botocore.exceptions.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _NOT_FOUND_CODES or (status == "404" and code not in ("NoSuchBucket",)):
                return NotFoundError(f"{h or doing} does not exist in {where}")
            if code == "InvalidObjectState":
                return ColdStorageError(
                    f"{h or doing} in {where} is in an archive storage class and must be restored "
                    "(thawed) before it can be read"
                )
            if code in _TRANSIENT_CODES or status in _TRANSIENT_CODES:
                return TransientBackendError(f"{doing} on {where}: {code or status} (S3 asked to retry)")
            if code == "NoSuchBucket":
                return BackendError(
                    f"the bucket {self.bucket} does not exist",
                    hint="Create it (or run 'safehold init', which creates it) or fix the URL.",
                )
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return BackendError(
                    f"access denied while {doing} on {where} ({code})",
                    hint="Check the AWS credentials (environment, profile or role) and the bucket policy.",
                )
            if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                return TransientBackendError(
                    f"{doing} on {where}: the upload was damaged in transit ({code})"
                )
            message = err.get("Message") or code or status
            return BackendError(f"{doing} on {where} failed: {message}")
        if isinstance(
            e,
            botocore.exceptions.ConnectionError
            | botocore.exceptions.HTTPClientError
            | botocore.exceptions.ResponseStreamingError
            | botocore.exceptions.IncompleteReadError
            | ConnectionError
            | TimeoutError,
        ):
            return TransientBackendError(f"connection failed while {doing} on {where}: {e}")
        if isinstance(
            e, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
        ):
            return BackendError(
                f"no AWS credentials for {where}",
                hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or an instance role.",
            )
        return BackendError(f"{doing} on {where} failed: {e}")

    def _head(self, h: Handle) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=self._key(h))
        except Exception as e:
            raise self._error(e, f"reading the size of {h}", h) from e
        return head

    # -- protocol -------------------------------------------------------------------------------------

    def create(self) -> None:
        """Create the bucket when it does not exist (S3 has no folders to prepare). Idempotent."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise self._error(e, "checking the bucket") from e
        except Exception as e:
            raise self._error(e, "checking the bucket") from e
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**args)
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code != "BucketAlreadyOwnedByYou":
                raise self._error(e, f"creating the bucket {self.bucket}") from e
        except Exception as e:
            raise self._error(e, f"creating the bucket {self.bucket}") from e

    def exists(self) -> bool:
        try:
            self._head(Handle(FileType.CONFIG))
            return True
        except NotFoundError:
            return False

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        key = self._key(h)
        body = bytes(data)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body}
        if self.checksum == "sha256":
            args["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(body).digest()).decode()
        else:
            args["ContentMD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.storage_class and h.type is FileType.DATA and h.cold:
            args["StorageClass"] = self.storage_class
        try:
            self._client.put_object(**args)
        except Exception as e:
            raise self._error(e, f"writing {h}", h) from e

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative range offset={offset} length={length} for {h}")
        if length == 0 or (length is None and offset > 0):
            # S3 cannot express an empty range, and "bytes=N-" fails at N == size: decide with the size.
            size = int(self._head(h)["ContentLength"])
            start, end = resolve_range(h, size, offset, length)
            if start == end:
                return b""
            length = end - start
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(h)}
        if length is not None:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
        try:
            resp = self._client.get_object(**args)
            body = resp["Body"]
            try:
                got: bytes = body.read()
            finally:
                body.close()
        except botocore.exceptions.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) == "InvalidRange":
                size = int(self._head(h)["ContentLength"])
                resolve_range(h, size, offset, length)  # raises: the range starts past the end
            raise self._error(e, f"reading {h}", h) from e
        except Exception as e:
            raise self._error(e, f"reading {h}", h) from e
        if length is not None and len(got) != length:
            if len(got) < length and offset + len(got) == _total_size(resp, default=-1):
                resolve_range(h, offset + len(got), offset, length)  # raises: the file is shorter
            raise BackendError(
                f"short read of {h} on {self._properties.location}: got {len(got)} of {length} bytes",
                hint="The object changed while it was read; run 'safehold check'.",
            )
        return got

    def stat(self, h: Handle) -> FileInfo:
        head = self._head(h)
        return FileInfo(h.name if h.type is not FileType.CONFIG else "config", int(head["ContentLength"]))

    def list(self, t: FileType) -> Iterator[FileInfo]:
        if t is FileType.CONFIG:
            try:
                yield self.stat(Handle(FileType.CONFIG))
            except NotFoundError:
                pass
            return
        top = self.prefix + t.folder + "/"
        found: builtins.list[FileInfo] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=top)
            for page in pages:
                for obj in page.get("Contents", []):
                    rest = str(obj["Key"])[len(top) :]
                    parts = rest.split("/")
                    if t is FileType.DATA:
                        if len(parts) != 2 or parts[0] != parts[1][:2]:
                            continue
                    elif len(parts) != 1:
                        continue
                    if is_valid_name(parts[-1], t):
                        modified = obj.get("LastModified")
                        mtime = modified.timestamp() if modified is not None else None
                        found.append(FileInfo(parts[-1], int(obj["Size"]), mtime))
        except Exception as e:
            raise self._error(e, f"listing {t.folder}") from e
        yield from found

    def remove(self, h: Handle) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(h))
        except Exception as e:
            err = self._error(e, f"removing {h}", h)
            if isinstance(err, NotFoundError):
                return
            raise err from e

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # -- archive storage classes (SupportsThaw) ------------------------------------------------------

    def archived(self, t: FileType) -> dict[str, str]:
        """Files of type ``t`` in an archive class, from the listing's StorageClass (one request a page)."""
        top = self.prefix + t.folder + "/"
        found: dict[str, str] = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=top)
            for page in pages:
                for obj in page.get("Contents", []):
                    cls = str(obj.get("StorageClass") or "STANDARD")
                    name = str(obj["Key"]).rsplit("/", 1)[-1]
                    if cls in ARCHIVE_CLASSES and is_valid_name(name, t):
                        found[name] = cls
        except Exception as e:
            raise self._error(e, f"listing {t.folder}") from e
        return found

    def thaw_state(self, h: Handle) -> ThawState:
        head = self._head(h)
        cls = str(head.get("StorageClass") or "STANDARD")
        if cls not in ARCHIVE_CLASSES:
            return ThawState(cls, "readable")
        restore = str(head.get("Restore") or "")
        if not restore:
            return ThawState(cls, "archived")
        if 'ongoing-request="true"' in restore:
            return ThawState(cls, "restoring")
        expiry = restore.partition('expiry-date="')[2].partition('"')[0] or None
        return ThawState(cls, "restored", expiry)

    def thaw(self, h: Handle, *, tier: str, days: int) -> ThawState:
        """RestoreObject with ``tier`` and ``days``. A request for a file already being restored is not an
        error; one for a file whose copy is ready extends it."""
        args = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        try:
            self._client.restore_object(Bucket=self.bucket, Key=self._key(h), RestoreRequest=args)
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code != "RestoreAlreadyInProgress":
                raise self._error(e, f"requesting a restore of {h}", h) from e
        except Exception as e:
            raise self._error(e, f"requesting a restore of {h}", h) from e
        return self.thaw_state(h)

    def scratch(self, name: str) -> S3Backend:
        """A backend on the key prefix ``<prefix><name>/`` with the same settings."""
        check_scratch_name(name)
        return S3Backend(self.bucket, self.prefix + name, **self._settings)

    def drop_scratch(self, name: str) -> None:
        """Nothing to remove: S3 has no folders."""
        check_scratch_name(name)


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _shared_loader() -> Any:
    """One botocore data loader per process: it caches the parsed service models (0.3 s per client
    otherwise). Credentials are not shared: each backend resolves its own through its session."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        return _LOADER


def _total_size(resp: dict[str, Any], default: int) -> int:
    """The object size from a ranged GET's Content-Range (``bytes a-b/total``)."""
    rng = str(resp.get("ContentRange", ""))
    _, _, total = rng.rpartition("/")
    return int(total) if total.isdigit() else default


def from_url(url: str, options: dict[str, Any]) -> S3Backend:
    """Make an :class:`S3Backend` from ``s3://bucket[/prefix]`` and its options (module docstring)."""
    allowed = {
        "endpoint_url",
        "region",
        "path_style",
        "sse",
        "sse_kms_key_id",
        "storage_class",
        "checksum",
        "connections",
        "profile",
        "timeout",
    }
    check_options(options, allowed, "s3")
    bucket, prefix = _bucket_and_prefix(url, "s3")
    return S3Backend(bucket, prefix, **options)


def _bucket_and_prefix(url: str, scheme: str) -> tuple[str, str]:
    rest = url.partition("://")[2]
    bucket, _, prefix = rest.partition("/")
    if not bucket or "@" in bucket or ":" in bucket:
        raise ConfigError(
            f"bad {scheme.upper()} URL {url.rsplit('@', maxsplit=1)[-1]!r}",
            hint=f"Use {scheme}://bucket/prefix; credentials come from the environment, never the URL.",
        )
    return bucket, prefix


def from_gs_url(url: str, options: dict[str, Any]) -> S3Backend:
    """Google Cloud Storage through its S3-compatible XML API: ``gs://bucket[/prefix]`` on
    ``https://storage.googleapis.com`` (``endpoint_url`` overrides it), signed with an HMAC key from
    ``GS_ACCESS_KEY_ID`` and ``GS_SECRET_ACCESS_KEY`` (never from the AWS variables: those are for AWS).
    Options: ``storage_class`` (STANDARD, NEARLINE, COLDLINE, ARCHIVE: all readable at once, so no thaw),
    ``endpoint_url``, ``region`` (default ``auto``), ``path_style`` (default true), ``connections``,
    ``timeout``. GCS encrypts every object itself: ``sse`` is not an option here."""
    allowed = {"endpoint_url", "region", "path_style", "storage_class", "connections", "timeout"}
    check_options(options, allowed, "gs")
    key_id, secret = (os.environ.get(v, "") for v in GCS_KEY_ENV)
    if not key_id or not secret:
        raise ConfigError(
            "no Google Cloud Storage HMAC key: GS_ACCESS_KEY_ID and GS_SECRET_ACCESS_KEY are not both set",
            hint="Create an HMAC key for a service account (Cloud Storage > Settings > Interoperability) "
            "and export both variables; they never go into the configuration.",
        )
    bucket, prefix = _bucket_and_prefix(url, "gs")
    opts: dict[str, Any] = {"endpoint_url": GCS_ENDPOINT, "region": "auto", "path_style": True} | options
    return S3Backend(bucket, prefix, scheme="gs", credentials=(key_id, secret), **opts)
