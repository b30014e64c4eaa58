"""Helpers shared by the backends: name checks, byte-range arithmetic, option checks."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from safehold.backends.base import FileType, Handle
from safehold.errors import BackendError, ConfigError

#: Prefix of temporary names; :meth:`Backend.list` never yields a name that starts with it.
TEMP_PREFIX = ".tmp-"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: bootstrap/ holds wheels and text files: a file name, never a path, never hidden, never '..'.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def _name_ok(name: str, t: FileType | None) -> bool:
    if t is FileType.BOOTSTRAP:
        return bool(_FILE_NAME.match(name)) and ".." not in name
    return bool(_NAME.match(name))


def check_handle(h: Handle) -> None:
    """Refuse names that could escape the repository tree or collide with temporary files.

    Raises ValueError (a programming error, not a storage failure) for a bad name.
    """
    if h.type is FileType.CONFIG:
        return
    if not _name_ok(h.name, h.type):
        raise ValueError(f"invalid repository file name {h.name!r} for {h.type.name}")
    if h.type is FileType.DATA and len(h.name) < 2:
        raise ValueError(f"data pack name {h.name!r} is shorter than its 2-character fan-out")


def is_valid_name(name: str, t: FileType | None = None) -> bool:
    """True for a name :func:`check_handle` accepts for type ``t`` (listings use it to skip foreign files)."""
    return _name_ok(name, t)


def resolve_range(h: Handle, size: int, offset: int, length: int | None) -> tuple[int, int]:
    """Return ``(start, end)`` for a load of ``length`` bytes at ``offset`` from a file of ``size`` bytes.

    Raises ValueError for a negative offset or length, BackendError when the range ends past the file.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"negative range offset={offset} length={length} for {h}")
    end = size if length is None else offset + length
    if offset > size or end > size:
        raise BackendError(
            f"{h} holds {size} bytes, fewer than the {end - offset} asked for at offset {offset}",
            hint="The file is shorter than the index says; run 'safehold check --read-data'.",
        )
    return offset, end


def temp_name(final: str) -> str:
    """A fresh temporary name for writing ``final`` (same folder, never listed)."""
    return f"{TEMP_PREFIX}{os.path.basename(final)}-{secrets.token_hex(8)}"


_SCRATCH = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def check_scratch_name(name: str) -> None:
    """Raise ValueError unless ``name`` is one safe path component."""
    if not _SCRATCH.match(name) or name in (".", ".."):
        raise ValueError(f"invalid scratch name {name!r}")


def check_options(
    options: Mapping[str, Any], allowed: Iterable[str], scheme: str, *, known: Iterable[str] | None = None
) -> None:
    """Raise ConfigError naming every key of ``options`` that is not in ``allowed`` for a ``scheme``
    backend; its hint lists ``known`` (default: ``allowed``)."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} for {scheme} backends: {', '.join(unknown)}",
            hint=f"Known options: {', '.join(sorted(set(allowed if known is None else known)))}.",
        )
