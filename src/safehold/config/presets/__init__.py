"""Discovery presets for ``safehold init --preset``: inspect a server, propose a configuration.

* :func:`discover_laravel` — a Laravel application and what serves it (``laravel`` preset).
* :func:`discover_generic` — system configuration, system information and the paths given (``generic``).

:mod:`.demo` is the fixed configuration of ``safehold demo`` (a files and a sqlite component).

Both return a :class:`Discovery`: what was found, what was not (with the reason), and a validated
:class:`~safehold.config.schema.Config`. Every probed location is below ``root`` so tests can run on a
temporary server tree. Secrets found on the way are referenced, never copied.
"""

from __future__ import annotations

from safehold.config.presets.discovery import Discovery, Finding
from safehold.config.presets.generic import discover_generic
from safehold.config.presets.laravel import discover_laravel

PRESETS = ("laravel", "generic")

__all__ = ["PRESETS", "Discovery", "Finding", "discover_generic", "discover_laravel"]
