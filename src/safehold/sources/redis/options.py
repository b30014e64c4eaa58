"""Settings of a ``redis`` component, and what a restore of it may be told."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from safehold.secrets import SecretRef


class RedisOptions(BaseModel):
    """Settings of a ``redis`` component."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Server host.", examples=["127.0.0.1"])
    port: int = Field(default=6379, description="Server port.", examples=[6379])
    socket: str | None = Field(
        default=None,
        description="Unix socket path (instead of host/port).",
        examples=["/run/redis/redis.sock"],
    )
    username: str | None = Field(default=None, description="ACL user name (Redis 6+).", examples=["backup"])
    password: SecretRef | None = Field(
        default=None, description="Where the password comes from.", examples=[{"env": "REDIS_PASSWORD"}]
    )
    keys_export: bool = Field(
        default=True, description="Also export every key with DUMP/PTTL for a live restore.", examples=[True]
    )
    redis_cli: str | None = Field(
        default=None, description="Path of redis-cli.", examples=["/usr/bin/redis-cli"]
    )


class RedisRestoreOptions(BaseModel):
    """What a restore of a ``redis`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["live", "rdb"] = Field(
        default="live", description="'live': RESTORE every key into a running server; 'rdb': write dump.rdb."
    )
    rdb_path: str | None = Field(default=None, description="With mode 'rdb': where to write dump.rdb.")
    db: int | None = Field(default=None, ge=0, description="Put every key into this database.")
    host: str | None = Field(default=None, description="Restore into this server.")
    port: int | None = Field(default=None, description="Its port.")
    socket: str | None = Field(default=None, description="Its Unix socket.")
    username: str | None = Field(default=None, description="User to connect as.")
    password: SecretRef | None = Field(default=None, description="Where its password comes from.")
