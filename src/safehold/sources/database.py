"""What the database server kinds (``mysql``, ``postgresql``) share: their restore options, how
``restore --db-*`` redirects them, and :meth:`verify` by a restore into scratch databases.

A kind subclasses :class:`DatabaseSource` and implements ``plan_restore``/``apply`` (taking
:class:`DatabaseRestoreOptions` or a subclass) and :meth:`DatabaseSource.drop_database`.
"""

from __future__ import annotations

import secrets as random
import time
from abc import abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.secrets import SecretRef
from safehold.sources.base import (
    Finding,
    Redirect,
    Sandbox,
    Source,
    SourceContext,
    VerifyReport,
    server_moved,
)
from safehold.sources.component import ComponentReader

#: What to do when the drill cannot use its scratch database server.
SCRATCH_HINT = (
    "A drill loads each dump into a new scratch database on the server of [drill] {kind}_scratch_host and "
    "{kind}_scratch_port (or --db-host/--db-port) as {kind}_scratch_user, with the password of "
    "{kind}_scratch_password (a secret reference; without one, the component's own password when user and "
    "server are the component's, else none). Give that user the right to create and drop databases, or "
    "set those options."
)
#: Every drill scratch database's name begins with this (then the drill's id).
SCRATCH_PREFIX = "safehold_drill_"
#: How long dropping a scratch database waits for a lock before it gives up with an error (seconds).
DROP_LOCK_WAIT = 30
#: The keys of a ``--db-*`` redirect (``restore --db-host/--db-port/--db-user/--db-name/--db-password-env``).
REDIRECT_KEYS = ("host", "port", "user", "database", "password")


class DatabaseRestoreOptions(BaseModel):
    """What a restore of a database server component may be told (``--set NAME.KEY=VALUE``, ``--db-*``)."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] | None = Field(
        default=None, description="Dumped databases to restore (default: every one in the snapshot)."
    )
    database: str | None = Field(default=None, description="Target name when one database is restored.")
    database_map: dict[str, str] = Field(default_factory=dict, description="Dumped name -> target name.")
    host: str | None = Field(default=None, description="Restore into this server.")
    port: int | None = Field(default=None, description="Its port.")
    user: str | None = Field(default=None, description="User to connect as.")
    password: SecretRef | None = Field(default=None, description="Where that user's password comes from.")
    verify: bool = Field(default=True, description="Compare row counts (and exact checksums) after loading.")
    no_password: bool = Field(
        default=False,
        description="Connect without a password instead of with the component's (a drill's scratch user "
        "that has none).",
    )

    def connection(self) -> dict[str, Any]:
        """The connection overrides that were given (host, port, user, password, and a kind's socket);
        ``password`` is None with ``no_password`` (not the component's own)."""
        keys = {"host", "port", "user", "password", "socket"} & set(type(self).model_fields)
        out = self.model_dump(exclude_none=True, include=keys)
        if self.no_password and self.password is None:
            out["password"] = None
        return out


class DatabaseSource(Source):
    """A database server kind: dumps of named databases, restored by name into a server."""

    #: the dumps of a database kind hold all of the application's data
    export_warning: ClassVar[str | None] = (
        "the database dumps: all of the application's data (users, password hashes, tokens)"
    )

    def secrets_note(self) -> str | None:
        return "the application's data (personal data, password hashes)"

    def redirect(self, where: Redirect) -> dict[str, Any]:
        return {k: v for k, v in where.db.items() if k in REDIRECT_KEYS and v is not None}

    def redirected_settings(self, settings: dict[str, Any], where: Redirect) -> dict[str, Any]:
        # with --db-name: where it went
        return server_moved(settings, {k: v for k, v in where.db.items() if v is not None})

    def safety_source(self, ctx: SourceContext) -> Source | None:
        """The live databases, when a forced restore replaces them where they were backed up from."""
        ro: DatabaseRestoreOptions = self.restore_options(ctx.options)
        where = ro.model_dump(exclude_none=True, include={"host", "port", "socket", "database"})
        return self if ctx.force and not where and not ro.database_map else None

    def restore_hints(self) -> list[str]:
        return [
            f"# into another server or name: safehold restore {self.name} --snapshot SNAP "
            "--db-host HOST --db-name NAME"
        ]

    @abstractmethod
    def dumped_databases(self, snap: ComponentReader) -> list[str]:
        """The names of the databases whose dumps ``snap`` holds."""

    @abstractmethod
    def drop_database(self, options: DatabaseRestoreOptions, name: str) -> list[str]:
        """Drop database ``name`` on the server ``options`` connect to (verify's clean-up), waiting a
        bounded time for locks (SourceError naming what holds one). A drill's scratch database (a name
        beginning with :data:`SCRATCH_PREFIX`) is dropped also while sessions still work in it (a killed
        drill's restore client): they are ended first. Returns what was ended, for the messages."""

    def count_objects(self, options: DatabaseRestoreOptions, name: str) -> dict[str, int]:
        """What database ``name`` holds besides tables (routines, triggers, views...), for drills."""
        return {}

    def scratch_connection(self, sandbox: Sandbox) -> tuple[dict[str, Any], str]:
        """The restore options that reach the drill's scratch server (``sandbox.db``; empty: the
        component's own server), and how they were chosen, for messages (never a secret value).

        Without a scratch password the component's own password is used only when the scratch server
        and user are the component's (one account); otherwise the scratch user connects without one."""
        raw = {k: v for k, v in sandbox.db.items() if k in ("host", "port", "user") and v is not None}
        own = self.options.model_dump()
        where = f"{raw.get('user', own.get('user'))}@{raw.get('host', own.get('host'))}:{raw.get('port', own.get('port'))}"
        password = sandbox.db.get("password")
        if password is not None:
            raw["password"] = password
            how = f"password from {SecretRef.model_validate(password).describe()}"
        elif all(raw.get(k, own.get(k)) == own.get(k) for k in ("host", "port", "user")):
            how = "the component's own password" if own.get("password") else "no password"
        else:
            raw["no_password"] = True
            how = "no password (none configured for the scratch user)"
        return raw, f"{where} with {how}"

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Load every dump into a scratch database (``sandbox.prefix`` + random, on ``sandbox.db`` or the
        component's own server), compare row counts and exact checksums with the backup's statistics
        (the restore's own proof), count the other objects, hand the loaded copy to ``sandbox.loaded``
        (health checks), then drop the scratch databases (unless ``sandbox.keep``). The scratch server
        is tried first (connect, drop a scratch name that does not exist), so that a wrong scratch user
        or password is reported as such, not as a dump that does not load. Each scratch database is
        registered in the sandbox before it is created, so a killed drill's are dropped later
        (:meth:`cleanup_scratch`)."""
        started = time.monotonic()
        dumped = self.dumped_databases(snap)
        suffix = random.token_hex(4)
        scratch = {db: f"{sandbox.prefix}{suffix}_{i}" for i, db in enumerate(dumped)}
        raw, described = self.scratch_connection(sandbox)
        if not dumped:
            finding = Finding(self.name, "restore", False, "the snapshot holds no dump")
            return VerifyReport(self.name, False, [finding], duration=time.monotonic() - started)
        try:
            self.drop_database(self.restore_options(raw), next(iter(scratch.values())))
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            finding = Finding(
                self.name,
                "scratch",
                False,
                f"cannot use the drill's scratch server ({described}): {message}; the dump was not tested",
                SCRATCH_HINT.format(kind=self.kind),
            )
            return VerifyReport(self.name, False, [finding], duration=time.monotonic() - started)
        where = {k: v for k, v in raw.items() if k in ("host", "port", "user", "password", "no_password")}
        for target in scratch.values():
            sandbox.register(self.kind, {**where, "database": target})
        raw.update({"databases": dumped, "database_map": scratch, "verify": True})
        checks: list[Finding] = []
        ok = True
        vctx = SourceContext(log=ctx.log, force=False, options=raw)
        options = None
        try:
            plan = self.plan_restore(snap, vctx)
            options = plan.options
            report = self.apply(plan, snap, vctx)
            for db, target in scratch.items():
                detail = report.details.get(target, {})
                if detail.get("problems"):
                    checks.append(
                        Finding(self.name, "restore", False, f"{db}: " + "; ".join(detail["problems"][:5]))
                    )
                    continue
                rows = sum((detail.get("rows") or {}).values())
                tables = detail.get("verified_tables", len(detail.get("rows") or {}))
                counts = self.count_objects(options, target)
                extra = "".join(f", {n} {k}" for k, n in counts.items())
                checks.append(
                    Finding(
                        self.name,
                        "restore",
                        True,
                        f"{db}: loaded into {target}, {tables} tables and {rows} rows as recorded{extra}",
                    )
                )
            if all(c.ok for c in checks):
                sandbox.loaded(self._loaded_settings(raw, list(scratch.values())))
        except Exception as exc:  # a failed load is the finding, not a crash of the drill
            ok = False
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            checks.append(Finding(self.name, "restore", False, message, getattr(exc, "hint", None)))
        finally:
            if not sandbox.keep:
                cleanup = options if options is not None else self.restore_options(raw)
                for target in scratch.values():
                    try:
                        self.drop_database(cleanup, target)
                    except Exception as exc:
                        checks.append(
                            Finding(
                                self.name,
                                "cleanup",
                                False,
                                f"could not drop scratch database {target}: {exc}",
                            )
                        )
        ok = ok and all(c.ok for c in checks)
        details = {"scratch_databases": list(scratch.values()), "kept": sandbox.keep}
        return VerifyReport(self.name, ok, checks, details, time.monotonic() - started)

    def _loaded_settings(self, raw: dict[str, Any], databases: list[str]) -> dict[str, Any]:
        """The component's settings pointing at the scratch copies (for ``sandbox.loaded``)."""
        settings = self.options.model_dump(exclude_none=True)
        moved = {k: v for k, v in raw.items() if k in ("host", "port", "user", "password")}
        if raw.get("no_password"):
            settings.pop("password", None)
        settings.pop("database", None)
        return {**server_moved(settings, moved), "databases": databases}

    @classmethod
    def cleanup_scratch(cls, resource: dict[str, Any]) -> str:
        """Drop a killed drill's scratch database: only a name a drill generates (``safehold_drill_``)."""
        name = str(resource.get("database", ""))
        if not name.startswith(SCRATCH_PREFIX):
            return f"left {name!r} alone: not a drill's scratch database"
        where = {
            k: v for k, v in resource.items() if k in ("host", "port", "user", "password") and v is not None
        }
        source = cls(
            "drill-cleanup", {"databases": [name], **{k: v for k, v in where.items() if k != "password"}}
        )
        ended = source.drop_database(source.restore_options(where), name)
        return f"dropped scratch database {name}" + (f" ({'; '.join(ended)})" if ended else "")
