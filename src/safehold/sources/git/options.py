"""Settings of a ``git`` component, and what a restore of it may be told."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GitOptions(BaseModel):
    """Settings of a ``git`` component."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="The repository: a work tree or a bare repository.",
        examples=["/var/www/app"],
    )
    bundle: bool = Field(
        default=False,
        description="Also store `git bundle --all`, so the code can be recreated without the remote.",
        examples=[True, False],
    )
    log_limit: int = Field(
        default=50,
        ge=1,
        description="How many commits of HEAD's history go into log.txt.",
        examples=[50],
    )
    timeout: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds after which a git command is killed and the component fails.",
        examples=[3600],
    )


class GitRestoreOptions(BaseModel):
    """What a restore of a ``git`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(default=None, description="Recreate the repository below this folder.")
