"""The one list of source kinds. A kind maps to ``package:Class``, one package per kind below
:mod:`safehold.sources`; packages load on first use so that a backup of files never imports a database
driver. A duplicate kind is an error at import time. :func:`source_class` returns ``type[Source]``: what
operations call is the typed contract of :class:`~safehold.sources.base.Source`, never a kind's module.
"""

from __future__ import annotations

import importlib

from safehold.errors import ConfigError
from safehold.sources.base import Source

_KINDS: dict[str, str] = {}


def register(kind: str, target: str) -> None:
    """Register ``kind`` as ``module:Class``; raises ValueError for a duplicate kind."""
    if kind in _KINDS:
        raise ValueError(f"source kind {kind!r} registered twice")
    _KINDS[kind] = target


for _kind, _target in [
    ("files", "safehold.sources.files:FilesSource"),
    ("mysql", "safehold.sources.mysql:MySQLSource"),
    ("postgresql", "safehold.sources.postgresql:PostgreSQLSource"),
    ("sqlite", "safehold.sources.sqlite:SQLiteSource"),
    ("redis", "safehold.sources.redis:RedisSource"),
    ("git", "safehold.sources.git:GitSource"),
    ("system", "safehold.sources.system:SystemSource"),
    ("system-info", "safehold.sources.system_info:SystemInfoSource"),
    ("command", "safehold.sources.command:CommandSource"),
    ("saas/retell", "safehold.sources.saas.retell:RetellSource"),
    ("saas/calcom", "safehold.sources.saas.calcom:CalcomSource"),
]:
    register(_kind, _target)


def kinds() -> list[str]:
    return sorted(_KINDS)


def source_class(kind: str) -> type[Source]:
    """The class implementing ``kind``; raises ConfigError for an unknown kind."""
    try:
        target = _KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown source kind {kind!r}", hint=f"Known kinds: {', '.join(kinds())}."
        ) from None
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Source)) or cls.kind != kind:
        raise TypeError(f"{target} is not the Source subclass of kind {kind!r}")
    return cls
