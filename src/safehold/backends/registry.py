"""The one list of backend URL schemes, and the one place that stacks the wrappers.

=================================  =======================================================================
URL                                backend
=================================  =======================================================================
``/path`` or ``relative/path``     :class:`~safehold.backends.local.LocalBackend`
``file:///path``                   the same
``sftp://user@host[:port]/path``   :class:`~safehold.backends.sftp.SFTPBackend` (``/path`` is absolute,
                                   ``/~/path`` is relative to the login folder)
``s3://bucket[/prefix]``           :class:`~safehold.backends.s3.S3Backend`
``gs://bucket[/prefix]``           the same, on Google Cloud Storage's S3-compatible XML API (HMAC key
                                   from ``GS_ACCESS_KEY_ID`` / ``GS_SECRET_ACCESS_KEY``)
``mem://name``                     a process-wide :class:`~safehold.backends.memory.MemoryBackend` per
                                   name (for tests and demos)
=================================  =======================================================================

:func:`open_backend` takes the URL and keyword options. Options every URL accepts:

* ``read_only`` (bool): refuse every write (:class:`~safehold.backends.wrappers.ReadOnlyBackend`).
* ``dry_run`` (bool): record writes and skip them (:class:`~safehold.backends.wrappers.DryRunBackend`).
* ``retry`` (:class:`~safehold.backends.wrappers.RetryPolicy` or None to disable retries).
* ``on_retry``: a callback ``(op, what, attempt, error, delay)`` called before each retry wait.
* ``connections`` (int): parallel requests (local 2, sftp 4, s3 8 by default).

Backend-specific options (an unknown option is a ConfigError):

* local: ``connections``.
* sftp: ``identity_file``, ``known_hosts``, ``accept_new_host_key``, ``connections`` (4), ``timeout`` (30 s).
* s3: ``endpoint_url``, ``region``, ``path_style``, ``sse`` (``AES256`` | ``aws:kms``), ``sse_kms_key_id``,
  ``storage_class`` (only for data packs saved with ``Handle.cold``), ``checksum`` (``md5`` | ``sha256``),
  ``connections`` (8), ``profile``, ``timeout`` (60 s).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from safehold.backends._util import check_options
from safehold.backends.base import Backend
from safehold.backends.memory import MemoryBackend
from safehold.backends.wrappers import (
    DryRunBackend,
    LimitBackend,
    ReadOnlyBackend,
    RetryBackend,
    RetryHook,
    RetryPolicy,
)
from safehold.errors import ConfigError

#: A factory turns a URL and the backend-specific options into an unwrapped backend.
Factory = Callable[[str, dict[str, Any]], Backend]

_SCHEMES: dict[str, Factory] = {}
_WRAPPER_OPTIONS = {"read_only", "dry_run", "retry", "on_retry"}
_DEFAULT_RETRY = RetryPolicy()


def register_scheme(scheme: str, factory: Factory) -> None:
    """Register ``factory`` for ``scheme://`` URLs; a scheme registered twice is a ValueError."""
    if scheme in _SCHEMES:
        raise ValueError(f"backend scheme {scheme!r} registered twice")
    _SCHEMES[scheme] = factory


def schemes() -> list[str]:
    """The registered URL schemes, sorted."""
    return sorted(_SCHEMES)


def split_scheme(url: str) -> tuple[str, str]:
    """``("file", url)`` for a plain path, else ``(scheme, url)``.

    Raises ConfigError for an unknown scheme.
    """
    head, sep, _ = url.partition("://")
    if not sep:
        return "file", url
    scheme = head.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unknown repository URL scheme {scheme!r} in {redact_url(url)!r}",
            hint=f"Use a path or one of: {', '.join(s + '://' for s in schemes())}.",
        )
    return scheme, url


def open_backend(url: str, **options: Any) -> Backend:
    """Open the backend for ``url`` with its wrappers stacked (see :func:`compose`).

    Raises ConfigError for an unknown scheme, a malformed URL or an unknown option. Connecting may
    raise BackendError (SFTP connects here; S3 and local connect on first use).
    """
    scheme, url = split_scheme(url)
    wrapper_opts = {k: options.pop(k) for k in list(options) if k in _WRAPPER_OPTIONS}
    backend = _SCHEMES[scheme](url, options)
    return compose(
        backend,
        read_only=bool(wrapper_opts.get("read_only", False)),
        dry_run=bool(wrapper_opts.get("dry_run", False)),
        retry=wrapper_opts.get("retry", _DEFAULT_RETRY),
        on_retry=wrapper_opts.get("on_retry"),
    )


def compose(
    backend: Backend,
    *,
    read_only: bool = False,
    dry_run: bool = False,
    retry: RetryPolicy | None = _DEFAULT_RETRY,
    on_retry: RetryHook | None = None,
) -> Backend:
    """Stack the wrappers: [read-only | dry-run] -> retry -> limit -> ``backend``.

    ``read_only`` and ``dry_run`` together are a ConfigError (read-only already writes nothing).
    """
    if read_only and dry_run:
        raise ConfigError("read_only and dry_run cannot be combined", hint="Choose one of them.")
    wrapped: Backend = LimitBackend(backend)
    if retry is not None:
        wrapped = RetryBackend(wrapped, retry, on_retry=on_retry)
    if read_only:
        wrapped = ReadOnlyBackend(wrapped)
    if dry_run:
        wrapped = DryRunBackend(wrapped)
    return wrapped


def redact_url(url: str) -> str:
    """The URL without a password (``user:secret@host`` -> ``user:***@host``) for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _take(options: dict[str, Any], allowed: set[str], scheme: str) -> dict[str, Any]:
    check_options(options, allowed, scheme, known=allowed | _WRAPPER_OPTIONS)
    return options


# -- factories ---------------------------------------------------------------------------------------


def _local(url: str, options: dict[str, Any]) -> Backend:
    """Options: connections."""
    from safehold.backends.local import LocalBackend

    opts = _take(options, {"connections"}, "local")
    path = url
    if url.lower().startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"file URL {url!r} names a host", hint="Use file:///absolute/path or a plain path."
            )
        path = unquote(parts.path)
    if not path:
        raise ConfigError("empty repository path", hint="Give the folder of the repository.")
    return LocalBackend(path, **opts)


_MEMORY: dict[str, MemoryBackend] = {}
_MEMORY_LOCK = threading.Lock()


def _memory(url: str, options: dict[str, Any]) -> Backend:
    """Options: connections (only used when the named backend is first made)."""
    opts = _take(options, {"connections"}, "mem")
    name = url.partition("://")[2]
    with _MEMORY_LOCK:
        if name not in _MEMORY:
            _MEMORY[name] = MemoryBackend(location=f"mem://{name}", **opts)
        return _MEMORY[name]


def forget_memory_backends() -> None:
    """Drop every ``mem://`` backend (tests call it between cases)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _lazy(module: str, func: str) -> Factory:
    """A factory that imports its module on first use (so a local backup never imports boto3)."""

    def factory(url: str, options: dict[str, Any]) -> Backend:
        made: Backend = getattr(importlib.import_module(module), func)(url, options)
        return made

    return factory


for _scheme, _factory in [
    ("file", _local),
    ("mem", _memory),
    ("sftp", _lazy("safehold.backends.sftp", "from_url")),
    ("s3", _lazy("safehold.backends.s3", "from_url")),
    ("gs", _lazy("safehold.backends.s3", "from_gs_url")),
]:
    register_scheme(_scheme, _factory)
