"""Backend options for remote repository URLs, read from the environment in this one place.

The CLI has no per-backend flags: the options of an ``sftp://`` or ``s3://`` repository come from these
environment variables (the configuration file passes the same options from ``[repository] options``).
Each variable applies only to the URL schemes it names; a malformed value is a ConfigError naming the
variable.

=================================  ======================================  ==========================
variable                           backend option                          applies to
=================================  ======================================  ==========================
``SAFEHOLD_CONNECTIONS``           ``connections`` (int >= 1)              every URL
``SAFEHOLD_S3_ENDPOINT``           ``endpoint_url``                        ``s3://``
``SAFEHOLD_S3_REGION``             ``region``                              ``s3://``
``SAFEHOLD_S3_PATH_STYLE``         ``path_style`` (bool)                   ``s3://``
``SAFEHOLD_S3_STORAGE_CLASS``      ``storage_class`` (cold data packs)     ``s3://``
``SAFEHOLD_S3_SSE``                ``sse`` (``AES256`` | ``aws:kms``)      ``s3://``
``SAFEHOLD_S3_SSE_KMS_KEY_ID``     ``sse_kms_key_id``                      ``s3://``
``SAFEHOLD_S3_PROFILE``            ``profile`` (AWS shared-config profile) ``s3://``
``SAFEHOLD_SFTP_IDENTITY``         ``identity_file``                       ``sftp://``
``SAFEHOLD_SFTP_KNOWN_HOSTS``      ``known_hosts``                         ``sftp://``
``SAFEHOLD_SFTP_ACCEPT_NEW_HOST_KEY``  ``accept_new_host_key`` (bool)      ``sftp://``
=================================  ======================================  ==========================

Booleans accept ``1/true/yes/on`` and ``0/false/no/off`` (any case).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from safehold.errors import ConfigError

#: variable -> (option, kind, schemes it applies to; empty = every scheme)
ENV_OPTIONS: dict[str, tuple[str, str, frozenset[str]]] = {
    "SAFEHOLD_CONNECTIONS": ("connections", "int", frozenset()),
    "SAFEHOLD_S3_ENDPOINT": ("endpoint_url", "str", frozenset({"s3"})),
    "SAFEHOLD_S3_REGION": ("region", "str", frozenset({"s3"})),
    "SAFEHOLD_S3_PATH_STYLE": ("path_style", "bool", frozenset({"s3"})),
    "SAFEHOLD_S3_STORAGE_CLASS": ("storage_class", "str", frozenset({"s3"})),
    "SAFEHOLD_S3_SSE": ("sse", "str", frozenset({"s3"})),
    "SAFEHOLD_S3_SSE_KMS_KEY_ID": ("sse_kms_key_id", "str", frozenset({"s3"})),
    "SAFEHOLD_S3_PROFILE": ("profile", "str", frozenset({"s3"})),
    "SAFEHOLD_SFTP_IDENTITY": ("identity_file", "str", frozenset({"sftp"})),
    "SAFEHOLD_SFTP_KNOWN_HOSTS": ("known_hosts", "str", frozenset({"sftp"})),
    "SAFEHOLD_SFTP_ACCEPT_NEW_HOST_KEY": ("accept_new_host_key", "bool", frozenset({"sftp"})),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(var: str, kind: str, raw: str) -> Any:
    value = raw.strip()
    if kind == "bool":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"{var}={raw!r} is not a yes/no value", hint=f"Set {var} to 1 or 0.")
    if kind == "int":
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"{var}={raw!r} is not a positive number", hint=f"Set {var} to e.g. 4.")
        return n
    if not value:
        raise ConfigError(f"{var} is set but empty", hint=f"Unset {var} or give it a value.")
    return value


def backend_options(url: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword options for ``open_backend(url, **options)`` from the environment (see module doc).

    Raises ConfigError for a malformed value or an unknown URL scheme.
    """
    from safehold.backends.registry import split_scheme

    env = os.environ if environ is None else environ
    scheme, _ = split_scheme(url)
    options: dict[str, Any] = {}
    for var, (option, kind, schemes) in ENV_OPTIONS.items():
        raw = env.get(var)
        if raw is None or (schemes and scheme not in schemes):
            continue
        options[option] = _parse(var, kind, raw)
    return options
