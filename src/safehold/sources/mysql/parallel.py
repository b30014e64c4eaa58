"""Load a mariadb-dump stream through several connections at once, cut by :mod:`.split` while it loads.

One thread runs :func:`~.split.scan` over the stream. Every table loader reads the stream itself
(``source`` opens it afresh; the repository gives the same bytes each time, checked by hash), takes the
next section nobody has taken yet (in stream order, so it only ever reads forward) and sends its
statements, each as the scan checked it, one by one over its own connection behind the preamble's SET
statements — exactly the text a client sends, delimiter left out, without a client program parsing
every byte once more (the ``mariadb`` client costs about as much CPU as the server's parse on a dump of
large INSERTs); a second thread per loader reads the next statements while the server runs one. Memory
stays bounded by one chunk and :data:`READ_AHEAD` + 1 statements per loader. The loader that holds
the last section when the scan ends keeps reading and spools the tail (views, routines, events: small)
to a temporary file that spills to disk beyond 16 MiB; when every loader is done, a ``mariadb`` client
loads the preamble, the prelude and the tail (client commands such as DELIMITER are the client's).

The first loader that fails stops the others; the server's error is in the
:class:`~safehold.errors.SourceError`. When the scan finds the dump cannot be cut after loaders started,
they are stopped and :class:`~.split.Unsplittable` is raised with ``args[1]`` true: what they loaded
were only checked statements on the target database's own tables, so the caller empties that database
and loads the dump through one client.
"""

from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import pymysql

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.mysql.split import MAX_PREAMBLE, Layout, Scanner, Section, Unsplittable, scan

#: The tail stays in memory up to this size, then goes to a temporary file.
TAIL_IN_MEMORY = 16 << 20
#: Statements a loader reads ahead of the one the server runs.
READ_AHEAD = 3


class Stopped(Exception):
    """Raised inside a reader when another part failed."""


class _Shared:
    """What the scan and the table loaders share (under :attr:`cond`)."""

    def __init__(self, progress: Callable[[int], None] | None, every: int) -> None:
        self.cond = threading.Condition()
        self.sections: list[Section] = []  # the scanner's own list: appended to, never changed
        self.preamble: bytes | None = None
        self.preamble_statements: list[bytes] = []
        self.layout: Layout | None = None  # set when the scan is complete
        self.next = 0
        self.started = False  # a loader has been given a section
        self.failure: BaseException | None = None
        self.sent = 0
        self.progress = progress
        self.every = every
        self.next_report = every

    # -- the scan's side
    def watch(self, sc: Scanner) -> None:
        with self.cond:
            if self.failure is not None:
                raise Stopped
            self.sections = sc.sections
            if self.preamble is None and sc.sections:
                first = sc.sections[0].start
                if first > min(len(sc.head), MAX_PREAMBLE):
                    raise Unsplittable("a preamble longer than 64 KiB")
                self.preamble = bytes(sc.head[:first])
                self.preamble_statements = [self.preamble[a:b] for a, b in sc.preamble_statements]
            self.cond.notify_all()

    def done(self, layout: Layout | None, failure: BaseException | None) -> None:
        with self.cond:
            if failure is not None and self.failure is None:
                self.failure = failure
            if layout is not None:
                self.layout, self.sections = layout, layout.sections
            self.cond.notify_all()

    # -- the loaders' side
    def take(self) -> tuple[int, Section] | None:
        """The next section (waiting for the scan to find it); None when there is none."""
        with self.cond:
            while True:
                if self.failure is not None:
                    raise Stopped
                if self.next < len(self.sections) and self.preamble is not None:
                    k, self.next = self.next, self.next + 1
                    self.started = True
                    return k, self.sections[k]
                if self.layout is not None:
                    return None
                self.cond.wait()

    def statement(self, sec: Section, i: int) -> tuple[int, int] | None:
        """Where statement ``i`` of ``sec`` is, once the scan has checked it; None after the last."""
        with self.cond:
            while True:
                if self.failure is not None:
                    raise Stopped
                closed = sec.end >= 0  # (read before the statements: they are all in when it is set)
                if 2 * i + 1 < len(sec.statements):
                    return sec.statements[2 * i], sec.statements[2 * i + 1]
                if closed:
                    return None
                self.cond.wait()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.failure is None:
                self.failure = exc
            self.cond.notify_all()

    def count(self, n: int) -> None:
        report = None
        with self.cond:
            self.sent += n
            if self.progress is not None and self.sent >= self.next_report:
                report, self.next_report = self.sent, self.sent + self.every
        if report is not None and self.progress is not None:
            self.progress(report)


def load(
    source: Callable[[], Iterator[bytes]],
    connect: Callable[[], Any],
    argv: list[str],
    *,
    loaders: int,
    secrets: list[str | None],
    progress: Callable[[int], None] | None = None,
    progress_every: int = 64 << 20,
    log: Callable[[str], None] | None = None,
) -> tuple[proc.ProgramResult, Layout, int]:
    """Load the dump ``source()`` through ``loaders`` connections from ``connect()`` and the tail through
    the client ``argv`` (see the module docstring). Returns the bytes of the stream with the seconds
    taken, the layout and the number of loaders that had work. Raises :class:`~.split.Unsplittable` or
    SourceError."""
    started = time.monotonic()
    shared = _Shared(progress, progress_every)
    used: list[int] = []
    with tempfile.SpooledTemporaryFile(max_size=TAIL_IN_MEMORY, prefix="safehold-tail-") as spool:
        threads = [threading.Thread(target=_scan, args=(shared, source), name="mysql-split", daemon=True)]
        threads += [
            threading.Thread(
                target=_loader, args=(shared, source, connect, spool, used), name=f"mysql-load-{i}"
            )
            for i in range(max(1, loaders))
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException as exc:  # Ctrl-C, a drill's deadline: the loaders stop too
            shared.fail(exc)
            for t in threads:
                if t.is_alive():
                    t.join(timeout=30)
            raise
        if isinstance(shared.failure, Unsplittable):
            raise Unsplittable(str(shared.failure), shared.started)
        if shared.failure is not None:
            raise shared.failure
        layout = shared.layout
        assert layout is not None
        spool.seek(0)

        def tail() -> Iterator[bytes]:
            yield layout.preamble + layout.prelude
            while block := spool.read(1 << 20):
                yield block

        res = proc.feed(argv, tail(), secrets=secrets, log=log)
        shared.count(res.size - len(layout.preamble) - len(layout.prelude))
    if progress is not None:
        progress(shared.sent)
    seconds = time.monotonic() - started
    return proc.ProgramResult(res.tool, layout.size, seconds, res.stderr), layout, len(used)


def _scan(shared: _Shared, source: Callable[[], Iterator[bytes]]) -> None:
    stream = source()
    try:
        layout = scan(stream, shared.watch)
    except Stopped:
        return
    except BaseException as exc:  # Unsplittable, or the repository's error: handed to the caller
        shared.done(None, exc)
        return
    finally:
        _close(stream)
    shared.done(layout, None)


class _Reader:
    """Byte ranges of a stream read forward (a chunk at a time)."""

    def __init__(self, stream: Iterator[bytes]) -> None:
        self.stream = stream
        self.chunk = b""
        self.start = 0  # the offset of ``chunk``

    def read(self, a: int, b: int, what: str) -> bytes:
        parts = []
        while True:
            end = self.start + len(self.chunk)
            if a < end and b > self.start:
                parts.append(self.chunk[max(a, self.start) - self.start : min(b, end) - self.start])
            if b <= end:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            nxt = next(self.stream, None)
            if nxt is None:
                raise SourceError(f"the dump ended inside {what}")
            self.start, self.chunk = end, nxt

    def rest(self, a: int) -> Iterator[bytes]:
        """Everything from offset ``a`` to the end (``a`` not before the current chunk)."""
        end = self.start + len(self.chunk)
        if end > a:
            yield self.chunk[max(a, self.start) - self.start :]
        for nxt in self.stream:
            self.start, self.chunk = end, nxt
            end += len(nxt)
            if end > a:
                yield nxt[max(a, self.start) - self.start :]
        self.chunk = b""
        self.start = end


def _loader(
    shared: _Shared,
    source: Callable[[], Iterator[bytes]],
    connect: Callable[[], Any],
    spool: IO[bytes],
    used: list[int],
) -> None:
    """One table loader: take sections in stream order and send their statements, read ahead by a
    second thread (:func:`_read_ahead`) while the server runs the one before."""
    try:
        taken = shared.take()
        if taken is None:
            return
        used.append(1)
        conn = connect()
    except Stopped:
        return
    except BaseException as exc:
        shared.fail(exc)
        return
    ahead: queue.Queue[tuple[Section, int, bytes] | BaseException | None] = queue.Queue(READ_AHEAD)
    reader = threading.Thread(
        target=_read_ahead, args=(shared, source, spool, taken, ahead), name="mysql-read-ahead", daemon=True
    )
    reader.start()
    try:
        for stmt in shared.preamble_statements:
            conn.query(stmt)
        while (item := _next(shared, ahead, reader)) is not None:
            if isinstance(item, BaseException):
                raise item
            sec, at, text = item
            try:
                conn.query(text)
            except pymysql.MySQLError as exc:
                raise SourceError(
                    f"the server refused a statement of {'view' if sec.view else 'table'} {sec.name} "
                    f"(at byte {at} of the dump): {exc}"
                ) from None
            shared.count(len(text))
    except Stopped:
        return
    except pymysql.MySQLError as exc:
        shared.fail(SourceError(f"loading the dump failed: {exc}"))
    except BaseException as exc:
        shared.fail(exc)
    finally:
        conn.close()
        reader.join()


def _next(
    shared: _Shared,
    ahead: queue.Queue[tuple[Section, int, bytes] | BaseException | None],
    reader: threading.Thread,
) -> tuple[Section, int, bytes] | BaseException | None:
    """The next item the read-ahead thread put, or Stopped once another part failed or it ended."""
    while True:
        try:
            return ahead.get(timeout=0.5)
        except queue.Empty:
            if shared.failure is not None or not reader.is_alive():
                return Stopped()


def _read_ahead(
    shared: _Shared,
    source: Callable[[], Iterator[bytes]],
    spool: IO[bytes],
    taken: tuple[int, Section] | None,
    ahead: queue.Queue[tuple[Section, int, bytes] | BaseException | None],
) -> None:
    """Put the statements of the sections this loader takes into ``ahead`` (then None, or the error);
    the loader of the last section spools the tail."""

    def put(item: tuple[Section, int, bytes] | BaseException | None) -> None:
        while True:
            try:
                ahead.put(item, timeout=0.5)
                return
            except queue.Full:
                if shared.failure is not None:
                    raise Stopped from None

    stream = source()
    try:
        reader = _Reader(iter(stream))
        k = -1
        while taken is not None:
            k, sec = taken
            i = 0
            while (where := shared.statement(sec, i)) is not None:
                put((sec, where[0], reader.read(where[0], where[1], f"a statement of {sec.name}")))
                i += 1
            taken = shared.take()
        layout = shared.layout
        assert layout is not None
        if k == len(layout.sections) - 1:
            for block in reader.rest(layout.tail_start):
                spool.write(block)
            if reader.start + len(reader.chunk) != layout.size:
                raise SourceError(
                    f"the dump read {reader.start + len(reader.chunk)} bytes, {layout.size} when it was scanned",
                    hint="The repository gave different bytes for the same file: run 'safehold check'.",
                )
        put(None)
    except Stopped:
        with contextlib.suppress(queue.Full):
            ahead.put_nowait(Stopped())
    except BaseException as exc:
        shared.fail(exc)
        with contextlib.suppress(queue.Full):
            ahead.put_nowait(Stopped())
    finally:
        _close(stream)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()
