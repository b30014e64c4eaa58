"""Running programs: in their own session, with a deadline, a bounded stderr tail and secrets masked.

Every program safehold starts (dump and restore tools, a component's command, git, package tools) goes
through :class:`Running`, so the rules hold everywhere:

* the program runs in its own session; a deadline (``timeout``) or :meth:`Running.kill` kills its whole
  process group (a shell's children too), and ``timed_out`` says which happened;
* it dies with safehold (:func:`die_with_parent`, Linux): a safehold killed with SIGKILL leaves no restore
  client loading a dump, no dump tool and no server of its own running behind it (its own session keeps a
  terminal's Ctrl-C from reaching the program directly; safehold stops it on its way out);
* its standard error is read by a thread to EOF and only the last :data:`STDERR_TAIL` bytes are kept
  (``stdout="tail"`` merges standard output into the same tail, ``"discard"`` drops it);
* the environment is safehold's own plus ``env`` (so that ``PGPASSWORD``/``REDISCLI_AUTH`` reach only
  the child); passwords never go into argv, where ``ps`` shows them;
* every message built from a program's output goes through :func:`redact` with the secrets the caller
  names (and an optional ``scrub``, such as masking credentials in URLs).

On top of it:

* :func:`drain` streams a program's standard output into a consumer (a repository file) and **fails
  closed** with :class:`~safehold.errors.SourceError`: the program exits non-zero, is killed or timed
  out, writes nothing (unless allowed), lacks its completion marker, or a ``validate`` callback rejects
  the stream;
* :func:`feed` writes chunks into a program's standard input, with the same checks;
* :func:`run_capture` runs a short program to completion (versions, lists); it never raises for a
  missing program or a timeout: :class:`Captured` says so;
* :func:`find_tool` resolves a program on ``PATH`` (or an explicit path) and names the package to
  install; :func:`tool_version` reads ``--version``.

Depends only on :mod:`safehold.errors` and :mod:`safehold.fsutil`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast

from safehold.errors import SourceError
from safehold.fsutil import grow_pipe

#: How much of a program's standard error is kept (the end of it).
STDERR_TAIL = 64 * 1024
#: How much of the stderr tail goes into an exception message (the log gets the last lines whole).
MESSAGE_TAIL = 1500
#: How many lines of the stderr tail go to the log.
LOG_LINES = 50
#: How many bytes of the end of a stream :class:`ObservedStream` keeps (completion markers).
END_TAIL = 4096
#: :class:`ReadAheadStream`: after a read shorter than a quarter of the pipe, wait this long before the
#: next (mariadb-dump writes 4-8 KiB at a time: ~60,000 reads of a 765 MB dump without the pause,
#: ~3,300 with it, 1 CPU-s less between the two processes), when the pipe holds at least SHORT_READ_PIPE.
SHORT_READ_PAUSE = 0.002
SHORT_READ_PIPE = 512 * 1024

R = TypeVar("R")


#: Told the pid (= session id) of every program :class:`Running` starts, in the thread that started it:
#: a drill records them in its sandbox, so that the next one can end what a killed drill's programs
#: started in turn (a shell's children outlive the shell: the parent-death signal reaches only the shell).
ON_START: list[Callable[[int], None]] = []

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
_prctl: list[Callable[..., int] | None] = []


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the started program gets SIGKILL when the thread
    that started it ends (prctl PR_SET_PDEATHSIG; on Linux; elsewhere nothing). Every caller waits for its
    program in the thread that started it, so in practice that is when safehold dies, however it dies.
    When safehold died between the fork and the prctl, the program ends at once."""
    if not _prctl:
        try:
            import ctypes

            _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):  # not Linux: no parent-death signal
            _prctl.append(None)
    prctl, parent = _prctl[0], os.getpid()

    def child() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    return child


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (longest first, so that a secret that
    contains another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def find_tool(candidates: Iterable[str], *, path: str | None = None, package: str | None = None) -> str:
    """The absolute path of the first of ``candidates`` found on ``PATH`` (or ``path``), or an explicit
    path given as a candidate.

    Raises SourceError "<a / b> not found" with a hint naming ``package`` (the Debian package to install).
    """
    names = list(candidates)
    for name in names:
        if "/" in name:
            if os.access(name, os.X_OK) and Path(name).is_file():
                return name
            continue
        found = shutil.which(name, path=path)
        if found:
            return found
    shown = " / ".join(names) or "tool"
    hint = f"Install it (Debian: apt-get install {package})" if package else "Install it"
    raise SourceError(f"{shown} not found", hint=f"{hint}, or set the tool's path in the component options.")


def status_text(code: int, timed_out: bool = False, timeout: float | None = None) -> str:
    """How a program ended, for a message: "timed out after 60s", "was killed by signal 9", ..."""
    if timed_out:
        return f"timed out after {timeout:g}s" if timeout is not None else "timed out"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Running:
    """A started program (see the module docstring for the rules it keeps).

    ``stdin=True`` gives a writable :attr:`stdin`. ``stdout="pipe"`` leaves :attr:`stdout` for the caller
    to read; ``"tail"`` merges it into the diagnostic tail; ``"discard"`` drops it. ``env`` is added to
    safehold's environment. Raises :class:`SourceError` ("cannot run ...") when the program cannot start.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        stdin: bool = False,
        stdout: Literal["pipe", "tail", "discard"] = "pipe",
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        tail_bytes: int = STDERR_TAIL,
    ) -> None:
        self.argv = argv
        self.tool = Path(argv[0]).name
        self.timeout = timeout
        self.timed_out = False
        self.started = time.monotonic()
        self._limit = tail_bytes
        self._tail = bytearray()
        full_env = dict(os.environ)
        full_env.update(env or {})
        out: int = {"pipe": subprocess.PIPE, "tail": subprocess.STDOUT, "discard": subprocess.DEVNULL}[stdout]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout == "tail" else out,
                stderr=subprocess.STDOUT if stdout == "tail" else subprocess.PIPE,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - a prctl and two syscalls, no lock taken
            )
        except OSError as exc:
            raise SourceError(
                f"cannot run {argv[0]!r}: {exc.strerror or exc}",
                hint="Check that the program is installed and on PATH.",
            ) from None
        except ValueError:  # a NUL in an argument or the environment: callers check values, this is the net
            raise SourceError(f"cannot run {self.tool}: an argument or variable holds NUL") from None
        self._timer: threading.Timer | None = None
        try:  # from here on, whatever interrupts (Ctrl-C, a drill's deadline) takes the program with it
            for hook in list(ON_START):
                hook(self.proc.pid)
            diag = self.proc.stdout if stdout == "tail" else self.proc.stderr
            assert diag is not None
            self._drainer = threading.Thread(
                target=self._drain, args=(diag,), daemon=True, name="stderr-tail"
            )
            self._drainer.start()
            if timeout is not None:
                self._timer = threading.Timer(timeout, self._expire)
                self._timer.daemon = True
                self._timer.start()
        except BaseException:
            self.kill()
            with contextlib.suppress(Exception):
                self.proc.wait()
            if self._timer is not None:
                self._timer.cancel()
            raise

    def _drain(self, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        with contextlib.suppress(OSError, ValueError):
            while block := os.read(fd, 65536):
                self._tail += block
                if len(self._tail) > 2 * self._limit:
                    del self._tail[: -self._limit]

    def _expire(self) -> None:
        self.timed_out = True
        self.kill()

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None, "started without stdin=True"
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None, 'started without stdout="pipe"'
        return self.proc.stdout

    def kill(self) -> None:
        """Kill the program's whole process group (no error if it already ended)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self) -> int:
        """Close our pipe ends, wait for the program, stop the deadline; returns the exit status."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        rc = self.proc.wait()
        self._drainer.join(timeout=10)
        if self._timer is not None:
            self._timer.cancel()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return rc

    def abort(self) -> None:
        """Kill the program and reap it (after an exception in the caller)."""
        self.kill()
        with contextlib.suppress(Exception):
            self.finish()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def tail(self, secrets: Iterable[str | None] = (), scrub: Callable[[str], str] | None = None) -> str:
        """The end of the program's diagnostic output, decoded, secrets masked."""
        text = redact(bytes(self._tail[-self._limit :]).decode("utf-8", "replace").strip(), secrets)
        return scrub(text) if scrub is not None else text

    def failure(self, what: str, tail: str) -> SourceError:
        """A SourceError "<tool> <what>: <end of the tail>" (the tail already redacted)."""
        if len(tail) > MESSAGE_TAIL:
            tail = "..." + tail[-MESSAGE_TAIL:]
        return SourceError(f"{self.tool} {what}" + (f": {tail}" if tail else " (no error output)"))

    def log_tail(self, tail: str, log: Callable[[str], None] | None, lines: int = LOG_LINES) -> None:
        """The last ``lines`` lines of the (redacted) tail to ``log``, each prefixed with the tool."""
        if log is not None and tail:
            for line in tail.splitlines()[-lines:]:
                log(f"{self.tool}: {line}")


class ObservedStream:
    """A read-only stream over ``raw`` that counts and keeps the head and tail of what passes through.

    ``observer`` (optional) sees every block in order (used to tally rows while a dump streams).
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


class ReadAheadStream(ObservedStream):
    """An :class:`ObservedStream` of a pipe read by a thread up to ``limit`` bytes ahead of the consumer.

    The program writing the pipe goes on while the consumer works (chunking, hashing, handing blocks to
    sealing helpers) instead of stopping whenever the pipe's buffer is full; ``observer`` (a row tally)
    runs in the reading thread. Size, head and tail are counted on the consumer's side, so they are what
    the consumer received. The thread reads its own duplicate of the descriptor: closing the original
    (``Running.finish``) never races a read. After a short read it pauses briefly (when the pipe holds at
    least ``pipe_size``), so that a producer's small writes arrive in fewer, larger reads.
    """

    def __init__(
        self,
        raw: IO[bytes],
        observer: Callable[[bytes], None] | None,
        limit: int,
        pipe_size: int = 0,
    ) -> None:
        super().__init__(raw, None)
        self._fd = os.dup(raw.fileno())
        self._watch = observer
        self._limit = max(1, limit)
        self._read_size = max(pipe_size, 65536)
        self._short = pipe_size // 4 if pipe_size >= SHORT_READ_PIPE else 0
        self._blocks: deque[bytes] = deque()
        self._offset = 0  # bytes of the first block already consumed
        self._queued = 0
        self._cond = threading.Condition()
        self._done = False
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._queued >= self._limit and not self._stopping:
                        self._cond.wait()
                    stopping = self._stopping
                block = os.read(self._fd, self._read_size)
                if not block:
                    return
                if stopping:
                    continue  # the consumer is gone: read to the end so the program can finish
                if self._watch is not None:
                    self._watch(block)
                with self._cond:
                    self._blocks.append(block)
                    self._queued += len(block)
                    self._cond.notify_all()
                if len(block) < self._short:
                    time.sleep(SHORT_READ_PAUSE)
        except BaseException as exc:  # raised in the consumer's next read
            self._error = exc
        finally:
            os.close(self._fd)
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _take(self, n: int, into: memoryview | None) -> bytes | int:
        """Up to ``n`` queued bytes (waiting only while none are queued): copied into ``into`` (returns
        the count) or returned as bytes."""
        parts: list[bytes | memoryview] = []
        got = 0
        with self._cond:
            while not self._blocks and not self._done:
                self._cond.wait()
            while self._blocks and got < n:
                block = self._blocks[0]
                k = min(len(block) - self._offset, n - got)
                piece = memoryview(block)[self._offset : self._offset + k]
                if into is not None:
                    into[got : got + k] = piece
                else:
                    parts.append(piece)
                got += k
                self._offset += k
                if self._offset == len(block):
                    self._blocks.popleft()
                    self._offset = 0
            self._queued -= got
            self._cond.notify_all()
            if not got and self._error is not None:
                raise self._error
        if into is not None:
            if got:
                self._see(into[:got])
            return got
        data = b"".join(parts)
        if data:
            self._see(data)
        return data

    def read(self, n: int = -1) -> bytes:
        data = self._take(1 << 20 if n is None or n < 0 else n, None)
        assert isinstance(data, bytes)
        return data

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        got = self._take(len(view), view)
        assert isinstance(got, int)
        return got

    def stop(self) -> None:
        """The consumer reads no more: the thread reads the rest of the pipe (discarding it) and ends."""
        with self._cond:
            self._stopping = True
            self._blocks.clear()
            self._queued = 0
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


@dataclass
class ProgramResult:
    """What a program did: bytes moved through its stdin or stdout, duration, the (redacted) stderr tail."""

    tool: str
    size: int = 0
    seconds: float = 0.0
    stderr: str = ""


def drain(
    argv: list[str],
    consume: Callable[[IO[bytes]], R],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    secrets: Iterable[str | None] = (),
    scrub: Callable[[str], str] | None = None,
    end_marker: bytes | None = None,
    validate: Callable[[ObservedStream], str | None] | None = None,
    observer: Callable[[bytes], None] | None = None,
    allow_empty: bool = False,
    log: Callable[[str], None] | None = None,
    wrap: Callable[[IO[bytes]], IO[bytes]] | None = None,
    read_ahead: int = 0,
) -> tuple[R, ProgramResult]:
    """Run ``argv`` and hand its standard output, as a readable stream, to ``consume``; fail closed.

    Returns what ``consume`` returned and the :class:`ProgramResult`. Raises SourceError when the program
    cannot start, exits non-zero, is killed or times out, writes nothing (unless ``allow_empty``), lacks
    ``end_marker`` within its last bytes, or ``validate`` returns a reason. The stderr tail is in the
    message and its last lines in ``log`` (redacted). ``wrap`` may filter the output before it is
    observed and consumed. An exception from ``consume`` kills the program and propagates.
    ``read_ahead`` (bytes, without ``wrap``): a thread reads the output up to that far ahead of
    ``consume`` and runs ``observer`` (:class:`ReadAheadStream`), so the program is not held up by it.
    """
    secrets = list(secrets)
    run = Running(argv, env=env, cwd=cwd, timeout=timeout)
    pipe_size = grow_pipe(run.stdout.fileno())
    stream: ObservedStream
    if read_ahead > 0 and wrap is None:
        try:
            stream = ReadAheadStream(run.stdout, observer, read_ahead, pipe_size)
        except BaseException:
            run.abort()
            raise
    else:
        stream = ObservedStream(wrap(run.stdout) if wrap else run.stdout, observer)
    try:
        consumed = consume(cast(IO[bytes], stream))
    except BaseException:
        if isinstance(stream, ReadAheadStream):
            stream.stop()
            run.kill()
            stream.join(timeout=10)
        run.abort()
        raise
    if isinstance(stream, ReadAheadStream):
        stream.stop()  # normally at the end already; otherwise the rest is read and dropped
        stream.join()
    code = run.finish()
    tail = run.tail(secrets, scrub)
    run.log_tail(tail, log)
    if code != 0 or run.timed_out:
        raise run.failure(status_text(code, run.timed_out, timeout), tail)
    if stream.size == 0 and not allow_empty:
        raise run.failure("produced an empty dump", tail)
    if end_marker is not None and end_marker not in stream.tail:
        marker = end_marker.decode(errors="replace")
        raise run.failure(f"dump is truncated (no {marker!r} at its end)", tail)
    if validate is not None:
        reason = validate(stream)
        if reason:
            raise run.failure(reason, tail)
    return consumed, ProgramResult(run.tool, stream.size, run.seconds, tail)


def feed(
    argv: list[str],
    chunks: Iterable[bytes],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    secrets: Iterable[str | None] = (),
    stdout: Literal["tail", "discard"] = "discard",
    progress: Callable[[int], None] | None = None,
    progress_every: int = 64 << 20,
    log: Callable[[str], None] | None = None,
) -> ProgramResult:
    """Write ``chunks`` into the standard input of ``argv``; raise SourceError unless it exits 0 having
    read everything.

    ``progress(bytes_so_far)`` is called about every ``progress_every`` bytes and at the end. The
    program's standard output is discarded, or with ``stdout="tail"`` kept in the tail (the result's
    ``stderr``). The tail goes into the error message and its last lines into ``log`` (redacted).
    """
    secrets = list(secrets)
    run = Running(argv, stdin=True, stdout=stdout, env=env, cwd=cwd, timeout=timeout)
    sent = 0
    next_report = progress_every
    broken = False
    try:
        for chunk in chunks:
            try:
                run.stdin.write(chunk)
            except BrokenPipeError:
                broken = True
                break
            sent += len(chunk)
            if progress is not None and sent >= next_report:
                progress(sent)
                next_report = sent + progress_every
        with contextlib.suppress(BrokenPipeError):
            run.stdin.close()
    except BaseException:
        run.abort()
        raise
    code = run.finish()
    if progress is not None:
        progress(sent)
    tail = run.tail(secrets)
    run.log_tail(tail, log)
    if code != 0 or run.timed_out:
        raise run.failure(status_text(code, run.timed_out, timeout), tail)
    if broken:
        raise run.failure("stopped reading its input before the end", tail)
    return ProgramResult(run.tool, sent, run.seconds, tail)


@dataclass
class Captured:
    """Result of :func:`run_capture`. ``returncode`` is None when the program could not be started."""

    returncode: int | None
    stdout: bytes
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def last_error(self) -> str:
        """The last line of stderr, or the exit status when there is none."""
        lines = self.stderr.splitlines()
        if lines:
            return lines[-1]
        return "not started" if self.returncode is None else status_text(self.returncode, self.timed_out)


def run_capture(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    secrets: Iterable[str | None] = (),
) -> Captured:
    """Run a program with small output to completion and return it (stdout whole, stderr's tail,
    redacted). Never raises for a program that cannot start (``returncode`` None) or a timeout."""
    try:
        run = Running(argv, env=env, cwd=cwd, timeout=timeout)
    except SourceError as exc:
        return Captured(None, b"", exc.message)
    try:
        out = run.stdout.read()
    except BaseException:
        run.abort()
        raise
    code = run.finish()
    if run.timed_out:
        return Captured(code, out, f"timed out after {timeout:g}s", timed_out=True)
    return Captured(code, out, run.tail(secrets))


def tool_version(path: str, *, timeout: float = 20) -> str:
    """The first line of ``<tool> --version`` (empty when it cannot be read)."""
    res = run_capture([path, "--version"], timeout=timeout)
    lines = res.stdout.decode(errors="replace").strip().splitlines() if res.ok else []
    return lines[0].strip() if lines else ""
