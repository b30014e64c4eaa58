"""Settings of a ``mysql`` component (:class:`MySQLOptions`) and of its restore (:class:`MySQLRestoreOptions`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safehold.secrets import SecretRef
from safehold.sources.database import DatabaseRestoreOptions


class MySQLOptions(BaseModel):
    """Settings of a ``mysql`` component."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] = Field(
        min_length=1, description="Databases to dump, one stream each.", examples=[["askproai_db"]]
    )
    host: str = Field(default="127.0.0.1", description="Server host name or address.", examples=["127.0.0.1"])
    port: int = Field(default=3306, description="Server TCP port.", examples=[3306])
    socket: str | None = Field(
        default=None,
        description="Unix socket path; when set it is used instead of host and port.",
        examples=["/run/mysqld/mysqld.sock"],
    )
    user: str = Field(default="root", description="User to connect as.", examples=["backup"])
    password: SecretRef | None = Field(
        default=None,
        description="Where the password comes from (env, file, dotenv key or command); none for no password.",
        examples=[{"file": "/var/www/app/.env", "key": "DB_PASSWORD"}],
    )
    dump_tool: str | None = Field(
        default=None,
        description="Dump program name or path; default the first of mariadb-dump, mysqldump on PATH.",
        examples=["/usr/bin/mariadb-dump"],
    )
    client_tool: str | None = Field(
        default=None,
        description="Client program used to load a dump on restore; default mariadb, then mysql.",
        examples=["/usr/bin/mariadb"],
    )
    routines: bool = Field(default=True, description="Dump stored procedures and functions.", examples=[True])
    triggers: bool = Field(default=True, description="Dump triggers.", examples=[True])
    events: bool = Field(default=True, description="Dump scheduled events.", examples=[True])
    schema_only: bool = Field(
        default=True, description="Also store a schema-only dump beside the full dump.", examples=[True]
    )
    checksums: bool = Field(
        default=False,
        description="Also run CHECKSUM TABLE before and after the dump, so that restores verify checksums "
        "as well as row counts (reads every table twice more; row counts always come from the dump itself).",
        examples=[True],
    )
    check_privileges: bool = Field(
        default=True,
        description="Fail the backup when the dump would silently lose objects: the user lacks TRIGGER, "
        "EVENT or SHOW VIEW, or cannot read a routine's definition (a routine another user defined; the "
        "failure names it). The app's own user, owning its routines, needs nothing more.",
        examples=[True],
    )
    text_exports: list[str] = Field(
        default_factory=list,
        description="Tables also exported as readable tab-separated text: 'table' (with one database) "
        "or 'database.table'.",
        examples=[["retell_agents", "phone_numbers"]],
    )
    extra_dump_args: list[str] = Field(
        default_factory=list,
        description="Further arguments for the dump program (never a password).",
        examples=[["--max-allowed-packet=512M"]],
    )

    @model_validator(mode="after")
    def _check(self) -> MySQLOptions:
        for entry in self.text_exports:
            if "." not in entry and len(self.databases) != 1:
                raise ValueError(
                    f"text export {entry!r} must be written 'database.table' with several databases"
                )
            if "." in entry and entry.split(".", 1)[0] not in self.databases:
                raise ValueError(f"text export {entry!r} names a database that is not dumped")
        if any(a.startswith(("-p", "--password")) for a in self.extra_dump_args):
            raise ValueError("extra_dump_args must not carry a password; use 'password' (a secret reference)")
        return self

    def exports_for(self, db: str) -> list[str]:
        out = []
        for entry in self.text_exports:
            if "." in entry:
                d, t = entry.split(".", 1)
                if d == db:
                    out.append(t)
            else:
                out.append(entry)
        return out


class MySQLRestoreOptions(DatabaseRestoreOptions):
    """What a restore of a ``mysql`` component may be told."""

    socket: str | None = Field(default=None, description="Restore through this Unix socket.")
    strip_definers: bool = Field(
        default=False, description="Drop DEFINER= clauses (restore as a user without SUPER / SET USER)."
    )
    parallel: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Connections that load tables at once (default 2, 1 on a one-core machine); 1 loads "
        "the whole dump through one mariadb client.",
    )
