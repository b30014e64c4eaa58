"""Settings the configuration accepts that no command of this version reads yet.

A table that validates and is then ignored is worse than an error: the operator believes drills are
scheduled or objectives watched. ``config check`` (and ``init``) warn for each such setting that a file
sets, naming what does not exist yet. A feature that starts reading one removes its entry here; the test
of this module checks that every entry still warns and that nothing read is listed.
"""

from __future__ import annotations

from safehold.config.schema import Config

#: Top-level tables no command reads yet -> what is missing (shown in the warning).
NOT_READ_YET: dict[str, str] = {}  # [drill] (safehold drill) and [objectives] (status, drill) are read now


def inert_settings(config: Config) -> list[str]:
    """A warning for every setting of ``config`` (written in its file) that nothing reads yet."""
    return [
        f"[{section}] has no effect yet: {why}; this version accepts the table and ignores it"
        for section, why in NOT_READ_YET.items()
        if section in config.model_fields_set
    ]
