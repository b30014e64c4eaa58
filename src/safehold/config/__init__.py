"""safehold's configuration: schema, loading and validation, secret references, sample and reference
generation, discovery presets. Secret references (:class:`~safehold.secrets.SecretRef`) live at the bottom
layer, in :mod:`safehold.secrets`, so that every layer may name and resolve them.

* :mod:`safehold.config.schema` — the pydantic models (:class:`Config` and its tables).
* :mod:`safehold.config.loader` — :func:`load_config`, :func:`validate`, every problem with its path.
* :mod:`safehold.config.docgen` — the commented sample and the Markdown reference, both from the schema.
* :mod:`safehold.config.presets` — ``init --preset laravel|generic`` discovery.

Names are imported lazily so that importing one module of this package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safehold.config.loader import ConfigInvalid, load_config, validate
    from safehold.config.schema import Config

__all__ = ["Config", "ConfigInvalid", "load_config", "validate"]


def __getattr__(name: str) -> Any:
    if name == "Config":
        from safehold.config.schema import Config

        return Config
    if name in ("ConfigInvalid", "load_config", "validate"):
        from safehold.config import loader

        return getattr(loader, name)
    raise AttributeError(name)
