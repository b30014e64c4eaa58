"""Settings of a ``postgresql`` component and what its restore may be told."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from safehold.secrets import SecretRef
from safehold.sources.database import DatabaseRestoreOptions


class PostgreSQLOptions(BaseModel):
    """Settings of a ``postgresql`` component."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] = Field(min_length=1, description="Databases to dump.", examples=[["app"]])
    host: str = Field(
        default="127.0.0.1",
        description="Server host, or a Unix socket directory (a path).",
        examples=["127.0.0.1", "/var/run/postgresql"],
    )
    port: int = Field(default=5432, description="Server port.", examples=[5432])
    user: str = Field(default="postgres", description="Role to connect as.", examples=["backup"])
    password: SecretRef | None = Field(
        default=None,
        description="Where the password comes from; none for trust/peer/.pgpass authentication.",
        examples=[{"env": "PGPASSWORD_APP"}],
    )
    globals: bool = Field(
        default=True,
        description="Also store roles and tablespaces (pg_dumpall --globals-only).",
        examples=[True],
    )
    checksums: bool = Field(
        default=True,
        description="Compute an md5 per table inside the dump's snapshot (reads and sorts every table).",
        examples=[True],
    )
    compression: int = Field(
        default=0, ge=0, le=9, description="pg_dump -Z level; 0 lets the repository compress.", examples=[0]
    )
    pg_dump: str | None = Field(default=None, description="Path of pg_dump.", examples=["/usr/bin/pg_dump"])
    pg_restore: str | None = Field(
        default=None, description="Path of pg_restore.", examples=["/usr/bin/pg_restore"]
    )
    pg_dumpall: str | None = Field(
        default=None, description="Path of pg_dumpall.", examples=["/usr/bin/pg_dumpall"]
    )
    extra_dump_args: list[str] = Field(
        default_factory=list, description="Further pg_dump arguments.", examples=[["--exclude-table=logs"]]
    )


class PostgreSQLRestoreOptions(DatabaseRestoreOptions):
    """What a restore of a ``postgresql`` component may be told."""

    no_owner: bool | None = Field(
        default=None,
        description="Skip ownership and privileges (default: when restoring as another user than the backup's).",
    )
    admin_database: str = Field(default="postgres", description="Database to connect to for CREATE DATABASE.")
