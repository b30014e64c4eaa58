"""A small TOML writer shaped for safehold's configuration: readable output, secret references inline.

Top-level tables and the named entries of ``offsite``, ``components`` and ``profiles`` become
``[table]`` sections; ``hooks.*`` and ``health_checks`` become ``[[arrays of tables]]``; every other
dict is an inline table (``password = { file = "/var/www/app/.env", key = "DB_PASSWORD" }``). Output
loads back with :mod:`tomllib` to the same data (tested).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

Path_ = tuple[str, ...]

TABLE_MAPS: frozenset[Path_] = frozenset({("offsite",), ("components",), ("profiles",)})
ARRAY_TABLES: frozenset[Path_] = frozenset(
    {("hooks", "before_backup"), ("hooks", "after_backup"), ("health_checks",)}
)
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def key(name: str) -> str:
    """A TOML key: bare when possible, else a quoted string."""
    return name if _BARE.match(name) else json.dumps(name, ensure_ascii=False)


def dotted(path: Path_) -> str:
    return ".".join(key(p) for p in path)


def value(v: Any) -> str:
    """An inline TOML value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{key(str(k))} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def is_table(path: Path_, v: Any) -> bool:
    """Whether the dict at ``path`` is written as a ``[section]`` (else inline)."""
    return isinstance(v, dict) and (len(path) == 1 or path[:-1] in TABLE_MAPS)


def is_array_table(path: Path_, v: Any) -> bool:
    return path in ARRAY_TABLES and isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(data: dict[str, Any]) -> str:
    """The document ``data`` as TOML text."""
    lines: list[str] = []
    _write(lines, (), data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write(lines: list[str], path: Path_, table: dict[str, Any]) -> None:
    for k, v in table.items():
        p = (*path, k)
        if v is None or is_table(p, v) or is_array_table(p, v):
            continue
        lines.append(f"{key(k)} = {value(v)}")
    for k, v in table.items():
        p = (*path, k)
        if is_table(p, v):
            has_scalars = any(
                not (is_table((*p, kk), vv) or is_array_table((*p, kk), vv)) for kk, vv in v.items()
            )
            if has_scalars or not v:
                lines.extend(["", f"[{dotted(p)}]"])
            _write(lines, p, v)
        elif is_array_table(p, v):
            for item in v:
                lines.extend(["", f"[[{dotted(p)}]]"])
                _write(lines, p, item)
