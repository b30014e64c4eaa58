"""Running dump and restore programs with their data streamed, never staged on disk.

* :func:`run_dump` starts a dump program and hands its standard output, as a readable stream, to
  ``out.add_stream``: the bytes go straight into the repository while memory stays bounded. Standard
  error is collected by a thread (only the last :data:`STDERR_TAIL` bytes are kept). After EOF the exit
  status is checked; the dump **fails closed** with :class:`~safehold.errors.SourceError` when the program
  exits non-zero or is killed, when the stream is empty, when it lacks the tool's completion marker
  (``-- Dump completed`` for mysqldump/mariadb-dump) or when a custom ``validate`` callback rejects it.
* :func:`feed_restore` starts a restore program and writes an iterator of chunks into its standard
  input, with the same stderr handling and exit-status check.
* :func:`run_capture` runs a short command and returns its output (versions, small queries).
* :func:`find_tool` resolves a program on ``PATH`` or raises SourceError naming the Debian package.

Passwords are never put into argv (where ``ps`` shows them): callers pass them in the environment
(``PGPASSWORD``, ``REDISCLI_AUTH``) or a private option file (:func:`mysql_option_file`, the only option
file the MySQL programs read). Every message produced here goes through :func:`redact` with the secrets
the caller names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from safehold import syntax
from safehold.engine.util import grow_pipe
from safehold.errors import SourceError
from safehold.sources.base import ComponentWriter

#: How much of a program's standard error is kept (the end of it).
STDERR_TAIL = 64 * 1024
#: How much of the stderr tail goes into an exception message (the full tail goes to the log).
MESSAGE_TAIL = 1500
#: How many bytes of the end of a dump are kept to check its completion marker.
END_TAIL = 4096

#: Debian packages that provide each tool, for the "not found" hint.
DEBIAN_PACKAGES: dict[str, str] = {
    "mariadb-dump": "mariadb-client",
    "mysqldump": "mariadb-client (or mysql-client)",
    "mariadb": "mariadb-client",
    "mysql": "mariadb-client (or mysql-client)",
    "pg_dump": "postgresql-client",
    "pg_restore": "postgresql-client",
    "pg_dumpall": "postgresql-client",
    "psql": "postgresql-client",
    "redis-cli": "redis-tools",
    "redis-server": "redis-server",
}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def find_tool(candidates: Iterable[str], *, env_path: str | None = None) -> str:
    """The absolute path of the first of ``candidates`` found on ``PATH`` (or an explicit path).

    Raises SourceError "<tool> not found" with a hint naming the Debian package to install.
    """
    names = list(candidates)
    for name in names:
        if "/" in name:
            if os.access(name, os.X_OK) and Path(name).is_file():
                return name
            continue
        found = shutil.which(name, path=env_path)
        if found:
            return found
    first = names[0] if names else "tool"
    shown = " / ".join(names)
    package = DEBIAN_PACKAGES.get(Path(first).name, "")
    hint = f"Install it (Debian: apt-get install {package})" if package else "Install it"
    raise SourceError(f"{shown} not found", hint=f"{hint}, or set the tool's path in the component options.")


class _StderrCollector(threading.Thread):
    """Reads a pipe to EOF in the background, keeping only the last ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int = STDERR_TAIL) -> None:
        super().__init__(daemon=True, name="stderr-collector")
        self._pipe = pipe
        self._limit = limit
        self._buf = bytearray()
        self.total = 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                block = self._pipe.read1(65536) if hasattr(self._pipe, "read1") else self._pipe.read(65536)
                if not block:
                    break
                self.total += len(block)
                self._buf += block
                if len(self._buf) > self._limit:
                    del self._buf[: len(self._buf) - self._limit]

    def text(self) -> str:
        self.join(timeout=10)
        with contextlib.suppress(OSError):
            self._pipe.close()
        return self._buf.decode("utf-8", errors="replace")


class ObservedStream:
    """A read-only stream over ``raw`` that counts and keeps the head and tail of what passes through.

    ``observer`` (optional) sees every block in order (used to tally rows while the dump streams).
    """

    def __init__(self, raw: IO[bytes], observer: Callable[[bytes], None] | None = None) -> None:
        self._raw = raw
        self._observer = observer
        self.size = 0
        self.head = b""
        self.tail = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        reader = getattr(self._raw, "read1", None)
        block: bytes = reader(n) if reader is not None else self._raw.read(n)
        if block:
            self._see(block)
        return block

    def readinto(self, buf: Any) -> int:
        """Read straight into ``buf`` (one copy less than :meth:`read`; what a chunker uses)."""
        into = getattr(self._raw, "readinto", None)
        if into is None:
            data = self.read(len(buf))
            buf[: len(data)] = data
            return len(data)
        n: int = into(buf) or 0
        if n:
            self._see(memoryview(buf)[:n])
        return n

    def _see(self, block: bytes | memoryview) -> None:
        self.size += len(block)
        if len(self.head) < 64:
            self.head = (self.head + bytes(block[:64]))[:64]
        self.tail = (self.tail + bytes(block[-END_TAIL:]))[-END_TAIL:]
        if self._observer is not None:
            self._observer(bytes(block))  # a copy only for an observer (the row tally)


@dataclass
class ProgramResult:
    """What a dump or restore program did: bytes moved, duration, the stderr tail."""

    tool: str
    size: int = 0
    sha256: str = ""
    seconds: float = 0.0
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _status_text(code: int) -> str:
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _failure(tool: str, what: str, stderr: str, secrets: Iterable[str | None]) -> SourceError:
    secrets = list(secrets)
    tail = redact(stderr.strip(), secrets)
    if len(tail) > MESSAGE_TAIL:
        tail = "..." + tail[-MESSAGE_TAIL:]
    msg = f"{tool} {what}" + (f": {tail}" if tail else " (no error output)")
    return SourceError(msg)


def _spawn(argv: list[str], env: dict[str, str] | None, **kw: Any) -> subprocess.Popen[bytes]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        return subprocess.Popen(argv, env=full_env, **kw)
    except FileNotFoundError:
        find_tool([argv[0]])  # raises the "not found" error with its install hint
        raise SourceError(f"{argv[0]} not found") from None
    except OSError as exc:
        raise SourceError(f"cannot start {Path(argv[0]).name}: {exc.strerror}") from None
    except ValueError:  # a NUL in an argument or the environment: callers check values, this is the net
        raise SourceError(f"cannot start {Path(argv[0]).name}: an argument or variable holds NUL") from None


def run_dump(
    out: ComponentWriter,
    path: str,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    end_marker: bytes | None = None,
    validate: Callable[[ObservedStream], str | None] | None = None,
    observer: Callable[[bytes], None] | None = None,
    allow_empty: bool = False,
    log: Callable[[str], None] | None = None,
    wrap: Callable[[IO[bytes]], IO[bytes]] | None = None,
) -> ProgramResult:
    """Stream the standard output of ``argv`` into ``out`` at ``path``; fail closed.

    Raises SourceError when the program cannot start, exits non-zero or is killed, writes nothing
    (unless ``allow_empty``), lacks ``end_marker`` within its last bytes, or ``validate`` returns a
    reason. The program's stderr tail is in the message (redacted) and, whole, in ``log``. ``wrap``
    may filter the program's output before it is observed and stored.
    """
    secrets = list(secrets)
    tool = Path(argv[0]).name
    start = time.monotonic()
    proc = _spawn(
        argv, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stdout is not None and proc.stderr is not None
    collector = _StderrCollector(proc.stderr)
    collector.start()
    grow_pipe(proc.stdout.fileno())
    stream = ObservedStream(wrap(proc.stdout) if wrap else proc.stdout, observer)
    try:
        stored = out.add_stream(path, cast(IO[bytes], stream))
    except BaseException:
        _kill(proc)
        collector.text()
        raise
    finally:
        with contextlib.suppress(OSError):
            proc.stdout.close()
    code = proc.wait()
    stderr = collector.text()
    result = ProgramResult(tool, stored.size, stored.sha256, time.monotonic() - start, stderr)
    if stderr.strip() and log is not None:
        for line in redact(stderr, secrets).strip().splitlines()[-50:]:
            log(f"{tool}: {line}")
    if code != 0:
        raise _failure(tool, _status_text(code), stderr, secrets)
    if stream.size == 0 and not allow_empty:
        raise _failure(tool, "produced an empty dump", stderr, secrets)
    if end_marker is not None and end_marker not in stream.tail:
        raise _failure(
            tool,
            f"dump is truncated (no {end_marker.decode(errors='replace')!r} at its end)",
            stderr,
            secrets,
        )
    if validate is not None:
        reason = validate(stream)
        if reason:
            raise _failure(tool, reason, stderr, secrets)
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def feed_restore(
    argv: list[str],
    chunks: Iterable[bytes],
    *,
    env: dict[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    progress: Callable[[int], None] | None = None,
    progress_every: int = 64 << 20,
    log: Callable[[str], None] | None = None,
) -> ProgramResult:
    """Write ``chunks`` into the standard input of ``argv``; raise SourceError unless it exits 0.

    ``progress(bytes_so_far)`` is called about every ``progress_every`` bytes and at the end. Standard
    output of the program is discarded; its stderr tail goes into the error message and ``log``.
    """
    secrets = list(secrets)
    tool = Path(argv[0]).name
    start = time.monotonic()
    proc = _spawn(argv, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    collector = _StderrCollector(proc.stderr)
    collector.start()
    sent = 0
    next_report = progress_every
    broken = False
    try:
        for chunk in chunks:
            try:
                proc.stdin.write(chunk)
            except BrokenPipeError:
                broken = True
                break
            sent += len(chunk)
            if progress is not None and sent >= next_report:
                progress(sent)
                next_report = sent + progress_every
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    except BaseException:
        _kill(proc)
        collector.text()
        raise
    code = proc.wait()
    stderr = collector.text()
    if progress is not None:
        progress(sent)
    if stderr.strip() and log is not None:
        for line in redact(stderr, secrets).strip().splitlines()[-50:]:
            log(f"{tool}: {line}")
    if code != 0:
        raise _failure(tool, _status_text(code), stderr, secrets)
    if broken:
        raise _failure(tool, "stopped reading its input before the end", stderr, secrets)
    return ProgramResult(tool, sent, "", time.monotonic() - start, stderr)


def run_capture(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short program to completion and return its output; SourceError on failure if ``check``."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    tool = Path(argv[0]).name
    try:
        proc = subprocess.run(argv, env=full_env, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SourceError(f"{tool} not found") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{tool} did not finish within {timeout:.0f} s") from None
    except ValueError:
        raise SourceError(f"cannot start {tool}: an argument or variable holds NUL") from None
    if check and proc.returncode != 0:
        raise _failure(tool, _status_text(proc.returncode), proc.stderr.decode(errors="replace"), secrets)
    return proc


def tool_version(path: str) -> str:
    """The first line of ``<tool> --version`` (empty when it cannot be read)."""
    with contextlib.suppress(SourceError):
        proc = run_capture([path, "--version"], timeout=20, check=False)
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        return lines[0].strip() if lines else ""
    return ""


@contextlib.contextmanager
def private_dir(prefix: str = "safehold-") -> Iterator[Path]:
    """A temporary directory only the current user can enter; removed with its content afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def mysql_option_file(
    *,
    user: str | None,
    password: str | None,
    host: str | None = None,
    port: int | None = None,
    socket: str | None = None,
) -> Iterator[str]:
    """A ``[client]`` option file (mode 0600 in a private directory, deleted afterwards) for
    ``--defaults-file=``, so that the password never appears in argv or the environment.

    Every value is quoted for the option-file syntax; one with a line break or NUL raises UnsafeValue
    (callers check earlier, naming the secret reference: this is the last line of defence).
    """
    values = {"user": user, "password": password, "socket": socket or None, "host": host or None}
    lines = ["[client]"]
    for key, value in values.items():
        if value is not None:
            lines.append(f"{key}={syntax.mysql_option_value(value, what=f'the MySQL option {key}')}")
    if port:
        lines.append(f"port={int(port)}")
    with private_dir("safehold-my-") as d:
        path = d / "client.cnf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        yield str(path)


class IterStream:
    """A readable binary stream over an iterator of byte blocks (for ``add_stream`` of generated text)."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._it = iter(blocks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._buf + b"".join(self._it)
        while len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def stream_of(blocks: Iterable[bytes]) -> IO[bytes]:
    """:class:`IterStream` over ``blocks``, typed as the binary stream ``add_stream`` takes."""
    return cast(IO[bytes], IterStream(blocks))
