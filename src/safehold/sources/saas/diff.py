"""Configuration drift between two SaaS exports, field by field (what ``safehold diff`` shows).

:func:`diff_exports` takes the files of one component's folder in two snapshots (path -> bytes) and
returns readable lines, sorted by path::

    + agents/abc.json (Jarvis)
    - llms/llm_1.json
    ~ agents/def.json: agent_name: "Front desk" -> "Reception"
    ~ agents/def.json: general_tools[1]: (absent) -> {"name": "end_call", ...}
    ~ webhooks/7.json: secret: (secret changed)

Rules: ``index.json`` is skipped (its counts follow from the objects); fields that change without a
configuration change (``last_modification_timestamp``, ``user_modified_timestamp``) are ignored; a field
whose name looks like a secret (password, secret, token, api key, ...) is never shown, only that it
changed; long values are shortened to 120 characters; a file that is not JSON is reported as changed.
"""

from __future__ import annotations

import json
import re
from typing import Any

VOLATILE = frozenset({"last_modification_timestamp", "user_modified_timestamp"})
SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api[_-]?key|apikey|credential|private[_-]?key)", re.I)
MAX_VALUE = 120
_ABSENT = object()


def diff_exports(old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
    """Lines describing every added, removed and changed object and field from ``old`` to ``new``."""
    lines: list[str] = []
    for path in sorted(set(old) | set(new)):
        if path.rsplit("/", 1)[-1] == "index.json" or not path.endswith(".json"):
            continue
        if path not in old:
            lines.append(f"+ {path}{_label(new[path])}")
        elif path not in new:
            lines.append(f"- {path}{_label(old[path])}")
        elif old[path] != new[path]:
            try:
                a, b = json.loads(old[path]), json.loads(new[path])
            except ValueError:
                lines.append(f"~ {path}: changed (not JSON)")
                continue
            for field, before, after in _changes(a, b, ""):
                lines.append(f"~ {path}: {field}: {_show(field, before, after)}")
    return lines


def _changes(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(a) | set(b), key=str):
            if key in VOLATILE:
                continue
            sub = f"{path}.{key}" if path else str(key)
            out.extend(_changes(a.get(key, _ABSENT), b.get(key, _ABSENT), sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            out.extend(
                _changes(a[i] if i < len(a) else _ABSENT, b[i] if i < len(b) else _ABSENT, f"{path}[{i}]")
            )
        return out
    if a is _ABSENT and b is _ABSENT:
        return []
    if a is not _ABSENT and b is not _ABSENT and a == b and type(a) is type(b):
        return []
    return [(path or "(whole object)", a, b)]


def _is_secret(field: str) -> bool:
    return any(SECRET_NAME.search(part) for part in re.split(r"[.\[\]]", field) if part)


def _show(field: str, before: Any, after: Any) -> str:
    if _is_secret(field):
        if before is _ABSENT:
            return "(secret added)"
        if after is _ABSENT:
            return "(secret removed)"
        return "(secret changed)"
    return f"{_value(before)} -> {_value(after)}"


def _value(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(_redact(value), sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _redact(value: Any) -> Any:
    """``value`` with every secret-looking key's value replaced (for whole objects shown at once)."""
    if isinstance(value, dict):
        return {k: ("***" if SECRET_NAME.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _label(data: bytes) -> str:
    try:
        obj = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(obj, dict):
        return ""
    for key in ("agent_name", "nickname", "name", "title", "slug", "subscriberUrl"):
        if isinstance(obj.get(key), str) and obj[key]:
            return f" ({obj[key]})"
    return ""
