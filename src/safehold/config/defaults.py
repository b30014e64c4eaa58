"""Settings that a command without a configuration file uses, as plain values (no pydantic).

A backup of paths given on the command line runs its preflight with these: importing the schema (pydantic
and every model, ~0.1 s) only for the defaults would be most of such a command's start-up. The models in
:mod:`safehold.config.tables` take their defaults from here, so there is one place for each value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreflightDefaults:
    """``[preflight]`` as :class:`~safehold.config.tables.PreflightSettings` has it by default."""

    enabled: bool = True
    warn_usage: int = 85
    margin: int = 25
    components: bool = True
    timeout: float = 10.0


PREFLIGHT = PreflightDefaults()
