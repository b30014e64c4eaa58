"""The ``demo`` preset: the configuration ``safehold demo`` backs up, restores and drills.

Components: ``config`` (the sample application's configuration folder, a ``files`` component) and
``database`` (its SQLite database, read through the ``sqlite`` source's online copy). The drill sandbox and
the repository are folders of the demo's work folder.
"""

from __future__ import annotations

from pathlib import Path

from safehold.config.schema import Config

#: The component that holds the sample application's configuration files.
CONFIG = "config"
#: The component that holds the sample application's database.
DATABASE = "database"


def demo_config(config_dir: Path, db_path: Path, workdir: Path) -> Config:
    """The demo's validated configuration for the sample application's ``config_dir`` and ``db_path``."""
    return Config.model_validate(
        {
            "repository": {"url": str(workdir / "repo")},
            "components": {
                CONFIG: {"kind": "files", "paths": [str(config_dir)]},
                DATABASE: {"kind": "sqlite", "path": str(db_path)},
            },
            "drill": {"sandbox": str(workdir / "drill-sandbox")},
        }
    )
