"""The ``command`` source: the standard output of any program, stored as one file.

Backup runs ``command`` and streams its stdout into ``filename`` in the component's folder (no copy on
disk). It fails closed: a non-zero exit, a timeout (the whole process group is killed), or an empty
output when ``allow_empty`` is false raises :class:`~safehold.errors.SourceError`, with the tail of the
program's stderr in the backup log and the message.

Restore pipes the stored file into ``restore_command``'s stdin and fails on its non-zero exit, on a
timeout, and when the program stops reading before the end of the file. With
``ctx.options["target_root"]`` (or without a ``restore_command``, where it is then required) the file
itself is written below that folder instead, atomically, mode 0600.

``command`` is an argv list, run without a shell (no quoting surprises, no injection). A single string is
accepted only together with ``shell = true`` and is then run by ``/bin/sh -c``. Environment additions
(``env``) may be plain strings or secret references; secret values are resolved at run time, are never
written into metadata, and are masked in any program output that reaches the log. Variable names must be
names (``[A-Za-z_][A-Za-z0-9_]*``) and no value may hold NUL, the one character an environment cannot
carry (:mod:`safehold.syntax`).

This module also holds the small subprocess helpers (:class:`Running`, :func:`run_capture`) that the
``git`` and ``system-info`` sources share.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from safehold import syntax
from safehold.config.secrets import SecretRef
from safehold.errors import SourceError
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, SourceContext

TAIL_BYTES = 4096
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------------------------------
# subprocess helpers (shared with git.py and sysinfo.py)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


class Running:
    """A started program with a deadline and a bounded tail of its diagnostic output.

    ``stdin=True`` gives a writable ``proc.stdin``. ``output="stdout"`` leaves ``proc.stdout`` for the
    caller to read and keeps the last :data:`TAIL_BYTES` of stderr; ``output="tail"`` merges stdout into
    that tail. The program runs in its own session; on timeout or :meth:`kill` the whole process group
    is killed. Raises :class:`SourceError` when the program cannot be started.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        stdin: bool = False,
        output: Literal["stdout", "tail"] = "stdout",
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
    ) -> None:
        self.argv = argv
        self.timed_out = False
        self._tail = bytearray()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if output == "stdout" else subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise SourceError(
                f"cannot run {argv[0]!r}: {exc.strerror or exc}",
                hint="Check that the program is installed and on PATH.",
            ) from None
        diag = self.proc.stderr if output == "stdout" else self.proc.stdout
        assert diag is not None
        self._drainer = threading.Thread(target=self._drain, args=(diag,), daemon=True)
        self._drainer.start()
        self._timer: threading.Timer | None = None
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        while block := os.read(fd, 65536):
            self._tail += block
            if len(self._tail) > 2 * TAIL_BYTES:
                del self._tail[:-TAIL_BYTES]

    def _expire(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """Kill the program's whole process group (no error if it already ended)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def finish(self) -> int:
        """Close our pipe ends, wait for the program and return its exit status."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        rc = self.proc.wait()
        self._drainer.join(timeout=5)
        if self._timer is not None:
            self._timer.cancel()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return rc

    def tail(self, secrets: list[str] | None = None) -> str:
        """The last bytes of the program's diagnostic output, decoded, secrets masked."""
        text = bytes(self._tail[-TAIL_BYTES:]).decode("utf-8", "replace").strip()
        return redact(text, secrets or [])


@dataclass
class Captured:
    """Result of :func:`run_capture`. ``returncode`` is None when the program is missing."""

    returncode: int | None
    stdout: bytes
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_capture(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 60.0,
) -> Captured:
    """Run a program with small output to completion. Never raises for a missing program or timeout."""
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return Captured(None, b"", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired as exc:
        return Captured(-9, exc.stdout or b"", f"timed out after {timeout:g}s", timed_out=True)
    except OSError as exc:
        return Captured(None, b"", f"{argv[0]}: {exc.strerror or exc}")
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    return Captured(proc.returncode, proc.stdout, stderr[-TAIL_BYTES:])


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


class CommandSource:
    """Store a program's stdout; restore by piping it into another program."""

    kind: ClassVar[str] = "command"
    Options = CommandOptions

    def __init__(self, name: str, options: CommandOptions) -> None:
        self.name = name
        self.options = options

    # helpers
    def _argv(self, value: _Argv) -> list[str]:
        return ["/bin/sh", "-c", value] if isinstance(value, str) else list(value)

    def _env(self) -> tuple[dict[str, str], list[str]]:
        env = dict(os.environ)
        secrets: list[str] = []
        for key, value in self.options.env.items():
            if isinstance(value, SecretRef):
                # an environment block carries anything but NUL (a multi-line PEM key is fine here)
                env[key] = value.resolve_for(syntax.ENVIRONMENT, owner=f"component {self.name}: env.{key}")
                secrets.append(env[key])
            else:
                env[key] = value
        return env, secrets

    def _failed(self, program: str, run: Running, rc: int, tail: str, hint: str) -> SourceError:
        what = f"timed out after {self.options.timeout:g}s" if run.timed_out else f"exited with status {rc}"
        last = f": {tail.splitlines()[-1]}" if tail else ""
        return SourceError(f"component {self.name}: {program} {what}{last}", hint=hint)

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Stream the program's stdout into ``filename``; raises SourceError on failure (fail closed)."""
        opts = self.options
        argv = self._argv(opts.command)
        env, secrets = self._env()
        started = time.monotonic()
        run = Running(argv, env=env, cwd=opts.cwd, timeout=opts.timeout)
        try:
            stats = out.add_stream(opts.filename, run.stdout)
        except BaseException:
            run.kill()
            run.finish()
            raise
        rc = run.finish()
        tail = run.tail(secrets)
        program = argv[2].split()[0] if opts.shell and len(argv) > 2 and argv[2].split() else argv[0]
        if run.timed_out or rc != 0:
            for line in tail.splitlines()[-20:]:
                out.log(f"{self.name}: {program}: {line}")
            raise self._failed(
                program, run, rc, tail, "Run the command by hand; its stderr is in the backup log."
            )
        if stats.size == 0 and not opts.allow_empty:
            raise SourceError(
                f"component {self.name}: {program} produced no output",
                hint="Set allow_empty = true if an empty output is expected.",
            )
        if tail:
            ctx.log(f"{self.name}: {program} wrote to stderr: {tail.splitlines()[-1]}")
        return {
            "program": program,
            "filename": opts.filename,
            "size": stats.size,
            "sha256": stats.sha256,
            "exit_code": rc,
            "seconds": round(time.monotonic() - started, 3),
        }

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Pipe the stored file into ``restore_command`` (or write it below ``target_root``)."""
        opts = self.options
        report = RestoreReport(component=self.name)
        if not snap.exists(opts.filename):
            raise SourceError(f"component {self.name}: the snapshot holds no {opts.filename!r}")
        target_root = ctx.options.get("target_root")
        if opts.restore_command is None or target_root:
            if not target_root:
                raise SourceError(
                    f"component {self.name}: no restore_command configured",
                    hint="Set restore_command, or restore with a target folder to get the file itself.",
                )
            dest = Path(target_root) / opts.filename
            verb = "overwrite" if dest.exists() else "write"
            report.actions.append(f"{verb} {dest}")
            if not ctx.dry_run:
                write_file_atomic(dest, snap.open_stream(opts.filename))
            return report
        argv = self._argv(opts.restore_command)
        program = argv[0] if not opts.shell else "sh -c"
        report.actions.append(f"pipe {opts.filename} into {program}")
        if ctx.dry_run:
            return report
        env, secrets = self._env()
        run = Running(argv, stdin=True, output="tail", env=env, cwd=opts.cwd, timeout=opts.timeout)
        stdin = run.proc.stdin
        assert stdin is not None
        broken = False
        try:
            for block in snap.open_stream(opts.filename):
                stdin.write(block)
        except BrokenPipeError:
            broken = True
        except BaseException:
            run.kill()
            run.finish()
            raise
        rc = run.finish()
        tail = run.tail(secrets)
        for line in tail.splitlines()[-20:]:
            ctx.log(f"{self.name}: {program}: {line}")
        if run.timed_out or rc != 0:
            raise self._failed(
                f"restore program {program}",
                run,
                rc,
                tail,
                "Run the restore command by hand with the file on its stdin.",
            )
        if broken:
            raise SourceError(
                f"component {self.name}: restore program {program} stopped reading before the end of "
                f"{opts.filename}",
                hint="The restore is incomplete; check the restore command.",
            )
        report.details["output_tail"] = tail
        return report


def write_file_atomic(dest: Path, chunks: Iterable[bytes]) -> None:
    """Write chunks to ``dest`` atomically (temporary name, fsync, rename), mode 0600."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.safehold-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for block in chunks:
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
