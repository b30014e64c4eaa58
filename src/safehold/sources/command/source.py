"""The ``command`` source (see the package docstring)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from safehold import proc, syntax
from safehold.engine.fs.safedir import folder_of, folder_warnings
from safehold.errors import SourceError
from safehold.fsutil import atomic_write
from safehold.secrets import SecretRef
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks
from safehold.sources.component import ComponentReader, ComponentWriter

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# --------------------------------------------------------------------------------------------------
# the source

_Argv = list[str] | str


def _check_relative(value: str) -> str:
    parts = value.split("/")
    if not value or value.startswith("/") or ".." in parts or "" in parts:
        raise ValueError("must be a relative path without '..' or empty parts")
    return value


class CommandOptions(BaseModel):
    """Settings of a ``command`` component."""

    model_config = ConfigDict(extra="forbid")

    command: _Argv = Field(
        description=(
            "The program to run, as an argv list (no shell). A single string is allowed only with "
            "shell = true and is run by /bin/sh -c."
        ),
        examples=[["pg_dumpall", "--globals-only"], "crontab -l -u www-data | grep -v '^#'"],
    )
    shell: bool = Field(
        default=False,
        description="Run `command` and `restore_command` (given as strings) through /bin/sh -c.",
        examples=[False],
    )
    filename: str = Field(
        default="output",
        description="Name of the file in the component's folder that holds the program's stdout.",
        examples=["globals.sql", "output"],
    )
    restore_command: _Argv | None = Field(
        default=None,
        description=(
            "Program whose stdin receives the stored file at restore time "
            "(argv list, or a string with shell = true)."
        ),
        examples=[["psql", "-d", "postgres"], None],
    )
    timeout: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds after which the program (and its children) is killed and the component fails.",
        examples=[3600, 60],
    )
    env: dict[str, str | SecretRef] = Field(
        default_factory=dict,
        description="Environment variables added for the program; values may be secret references.",
        examples=[{"PGHOST": "127.0.0.1", "PGPASSWORD": {"env": "DB_PASSWORD"}}],
    )
    cwd: str | None = Field(
        default=None,
        description="Working directory of the program (default: safehold's own).",
        examples=["/var/www/app", None],
    )
    allow_empty: bool = Field(
        default=True,
        description="Accept an empty output; with false an empty output fails the component.",
        examples=[True, False],
    )

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        return _check_relative(value)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str | SecretRef]) -> dict[str, str | SecretRef]:
        for key, item in value.items():
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(f"environment variable name {key!r} is not a name (letters, digits, _)")
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"environment variable {key} holds a NUL character")
        return value

    @model_validator(mode="after")
    def _argv_forms(self) -> CommandOptions:
        for name in ("command", "restore_command"):
            value = getattr(self, name)
            if isinstance(value, str) and not self.shell:
                raise ValueError(f"'{name}' as a string needs shell = true (or give an argv list)")
            if isinstance(value, list) and not value:
                raise ValueError(f"'{name}' must not be empty")
        return self


class CommandRestoreOptions(BaseModel):
    """What a restore of a ``command`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(
        default=None,
        description="Write the stored file below this folder instead of running restore_command.",
    )


class CommandSource(Source):
    """Store a program's stdout; restore by piping it into another program."""

    kind: ClassVar[str] = "command"
    Options: ClassVar[type[BaseModel]] = CommandOptions
    RestoreOptions: ClassVar[type[BaseModel]] = CommandRestoreOptions
    restore_rank: ClassVar[int] = 110
    export_note: ClassVar[str] = (
        "`{base}/`: the output of the component's command, as stored; feed it to the matching "
        "restore program (for example `psql < file`)."
    )
    options: CommandOptions

    # helpers
    def _argv(self, value: _Argv) -> list[str]:
        return ["/bin/sh", "-c", value] if isinstance(value, str) else list(value)

    def _env(self) -> tuple[dict[str, str], list[str]]:
        """The environment additions, and the secret values among them (to mask in messages)."""
        env: dict[str, str] = {}
        secrets: list[str] = []
        for key, value in self.options.env.items():
            if isinstance(value, SecretRef):
                # an environment block carries anything but NUL (a multi-line PEM key is fine here)
                env[key] = value.resolve_for(syntax.ENVIRONMENT, owner=f"component {self.name}: env.{key}")
                secrets.append(env[key])
            else:
                env[key] = value
        return env, secrets

    def _failed(self, exc: SourceError, hint: str) -> SourceError:
        return SourceError(f"component {self.name}: {exc.message}", hint=hint)

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Stream the program's stdout into ``filename``; raises SourceError on failure (fail closed)."""
        opts = self.options
        argv = self._argv(opts.command)
        env, secrets = self._env()
        started = time.monotonic()
        program = argv[2].split()[0] if opts.shell and len(argv) > 2 and argv[2].split() else argv[0]

        def log(line: str) -> None:
            out.log(f"{self.name}: {line}")

        try:
            stats, res = proc.drain(
                argv,
                lambda stream: out.add_stream(opts.filename, stream),
                env=env,
                cwd=opts.cwd,
                timeout=opts.timeout,
                secrets=secrets,
                allow_empty=True,
                log=log,
            )
        except SourceError as exc:
            raise self._failed(exc, "Run the command by hand; its stderr is in the backup log.") from None
        if stats.size == 0 and not opts.allow_empty:
            raise SourceError(
                f"component {self.name}: {program} produced no output",
                hint="Set allow_empty = true if an empty output is expected.",
            )
        if res.stderr:
            ctx.log(f"{self.name}: {program} wrote to stderr: {res.stderr.splitlines()[-1]}")
        return {
            "program": program,
            "filename": opts.filename,
            "size": stats.size,
            "sha256": stats.sha256,
            "exit_code": 0,
            "seconds": round(time.monotonic() - started, 3),
        }

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        opts = self.options
        for what, argv in (("command", opts.command), ("restore_command", opts.restore_command)):
            if argv is None:
                continue
            prog = "/bin/sh" if opts.shell else str(argv[0] if isinstance(argv, list) else argv)
            found = shutil.which(prog)
            if found:
                checks.passed("program", f"{what}: {found}")
            else:
                checks.problem(
                    "program", f"{what}: {prog} not found or not executable", "Install it or fix the path."
                )
        if opts.cwd and not Path(opts.cwd).is_dir():
            checks.problem("cwd", f"working directory {opts.cwd} does not exist")
        return checks.findings

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Pipe the stored file into ``restore_command`` (or write it below ``target_root``)."""
        ro: CommandRestoreOptions = self.restore_options(ctx.options)
        opts = self.options
        plan = RestorePlan(component=self.name, options=ro)
        if not snap.exists(opts.filename):
            raise SourceError(f"component {self.name}: the snapshot holds no {opts.filename!r}")
        if opts.restore_command is None or ro.target_root:
            if not ro.target_root:
                raise SourceError(
                    f"component {self.name}: no restore_command configured",
                    hint="Set restore_command, or restore with --target-root DIR to get the file itself.",
                )
            dest = Path(ro.target_root) / opts.filename
            plan.actions.append(f"{'overwrite' if dest.exists() else 'write'} {dest}")
            plan.warnings += folder_warnings(dest, ro.target_root)
            plan.steps.append(("write", dest))
            return plan
        argv = self._argv(opts.restore_command)
        plan.actions.append(f"pipe {opts.filename} into {argv[0] if not opts.shell else 'sh -c'}")
        plan.steps.append(("pipe", argv))
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        opts = self.options
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings))
        ((how, arg),) = plan.steps
        if how == "write":
            ro: CommandRestoreOptions = plan.options
            with folder_of(arg, ro.target_root) as dfd:
                atomic_write(arg.name, snap.open_stream(opts.filename), dir_fd=dfd)
            return report
        env, secrets = self._env()

        def log(line: str) -> None:
            ctx.log(f"{self.name}: {line}")

        try:
            res = proc.feed(
                arg,
                snap.open_stream(opts.filename),
                env=env,
                cwd=opts.cwd,
                timeout=opts.timeout,
                secrets=secrets,
                stdout="tail",
                log=log,
            )
        except SourceError as exc:
            raise self._failed(
                SourceError(f"restore program {exc.message}"),
                "Run the restore command by hand with the file on its stdin; the restore is incomplete.",
            ) from None
        report.details["output_tail"] = res.stderr
        return report
