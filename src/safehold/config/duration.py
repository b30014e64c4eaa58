"""Durations as written in the configuration and on the command line (``"90m"``, ``"24h"``, ``"1h30m"``).

Apart from :mod:`safehold.config.validation` (pydantic): ``forget``, ``prune`` and ``--lock-wait`` parse a
duration on every run, and that must not import pydantic (~8 MiB, ~70 ms) when no configuration is read.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"^\s*(\d+\s*[smhdw]\s*)+$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"24h"``, ``"7d"``, ``"1h30m"``, ``"2w"`` -> timedelta; raises ValueError otherwise."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration: write a number and a unit s, m, h, d or w ('24h')")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return timedelta(seconds=seconds)
