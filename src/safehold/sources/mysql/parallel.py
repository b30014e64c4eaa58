"""Load a mariadb-dump stream through several clients at once, cut by :mod:`.split` while it loads.

One thread runs :func:`~.split.scan` over the stream; every table client reads the stream itself
(``source`` opens it afresh; the repository gives the same bytes each time, checked by hash), takes the
next section nobody has taken yet (in stream order, so it only ever reads forward) and writes it behind
the preamble into its own ``mariadb`` process, never a byte the scan has not checked yet (a client waits
for the scan where it is behind). Memory stays bounded by one chunk per reader. The client that holds
the last section when the scan ends keeps reading and spools the tail (views, routines, events: small)
to a temporary file that spills to disk beyond 16 MiB. When every table client has exited 0, one more
client loads the preamble, the prelude and the tail.

The first client that fails stops the others; its redacted error output is in the
:class:`~safehold.errors.SourceError`. When the scan finds the dump cannot be cut after clients started,
they are stopped and :class:`~.split.Unsplittable` is raised with ``started`` set: what they loaded were
only checked statements on the target database's own tables, so the caller empties that database and
loads the dump through one client.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.mysql.split import MAX_PREAMBLE, Layout, Section, Unsplittable, scan

#: The tail stays in memory up to this size, then goes to a temporary file.
TAIL_IN_MEMORY = 16 << 20


class Stopped(Exception):
    """Raised inside a reader when another part failed."""


class _Shared:
    """What the scan and the table clients share (under :attr:`cond`)."""

    def __init__(self, progress: Callable[[int], None] | None, every: int) -> None:
        self.cond = threading.Condition()
        self.sections: list[Section] = []
        self.checked = 0
        self.preamble: bytes | None = None
        self.layout: Layout | None = None  # set when the scan is complete
        self.next = 0
        self.started = False  # a client has been given a section
        self.failure: BaseException | None = None
        self.sent = 0
        self.progress = progress
        self.every = every
        self.next_report = every

    # -- the scan's side
    def watch(self, sections: list[Section], checked: int, head: bytes | bytearray) -> None:
        with self.cond:
            if self.failure is not None:
                raise Stopped
            have = len(self.sections)
            if have:  # the last one known may have been closed (or given skips) since
                last = sections[have - 1]
                self.sections[have - 1] = Section(last.name, last.start, last.end, last.view, list(last.skip))
            for s in sections[have:]:
                self.sections.append(Section(s.name, s.start, s.end, s.view, list(s.skip)))
            if self.preamble is None and sections:
                if sections[0].start > min(len(head), MAX_PREAMBLE):
                    raise Unsplittable("a preamble longer than 64 KiB")
                self.preamble = bytes(head[: sections[0].start])
            self.checked = checked
            self.cond.notify_all()

    def done(self, layout: Layout | None, failure: BaseException | None) -> None:
        with self.cond:
            if failure is not None and self.failure is None:
                self.failure = failure
            if layout is not None:
                self.layout, self.sections, self.checked = layout, layout.sections, layout.size
            self.cond.notify_all()

    # -- the clients' side
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

    def section(self, k: int, upto: int) -> tuple[Section, int]:
        """Section ``k`` as known now, once the scan has checked past ``upto`` or closed it."""
        with self.cond:
            while True:
                if self.failure is not None:
                    raise Stopped
                sec = self.sections[k]
                if self.checked >= upto or sec.end >= 0:
                    return sec, self.checked
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
    argv: list[str],
    *,
    clients: int,
    secrets: list[str | None],
    progress: Callable[[int], None] | None = None,
    progress_every: int = 64 << 20,
    log: Callable[[str], None] | None = None,
) -> tuple[proc.ProgramResult, Layout]:
    """Load the dump ``source()`` through ``clients`` processes of ``argv`` (see the module docstring);
    returns the bytes of the stream with the seconds taken, and the layout. Raises
    :class:`~.split.Unsplittable` (``args[1]``: whether clients had started) or SourceError."""
    started = time.monotonic()
    shared = _Shared(progress, progress_every)
    with tempfile.SpooledTemporaryFile(max_size=TAIL_IN_MEMORY, prefix="safehold-tail-") as spool:
        scanner = threading.Thread(target=_scan, args=(shared, source), name="mysql-split", daemon=True)
        workers = [
            threading.Thread(
                target=_table_client, args=(shared, source, argv, secrets, spool, log), name=f"mysql-load-{i}"
            )
            for i in range(max(1, clients))
        ]
        threads = [scanner, *workers]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException as exc:  # Ctrl-C, a drill's deadline: the clients stop too
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
    return proc.ProgramResult(res.tool, layout.size, time.monotonic() - started, res.stderr), layout


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
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    shared.done(layout, None)


def _table_client(
    shared: _Shared,
    source: Callable[[], Iterator[bytes]],
    argv: list[str],
    secrets: list[str | None],
    spool: IO[bytes],
    log: Callable[[str], None] | None,
) -> None:
    """One table client: take sections in stream order and write them; see the module docstring."""
    try:
        taken = shared.take()
    except Stopped:
        return
    if taken is None:
        return
    try:
        run = proc.Running(argv, stdin=True, stdout="discard")
    except BaseException as exc:
        shared.fail(exc)
        return
    broken = False
    try:
        _write_sections(shared, source, run, spool, taken)
    except Stopped:
        run.abort()
        return
    except BrokenPipeError:
        broken = True  # the client ended: its status and error output say why
    except BaseException as exc:
        run.abort()
        shared.fail(exc)
        return
    with contextlib.suppress(BrokenPipeError):
        run.stdin.close()
    code = run.finish()
    tail = run.tail(secrets)
    run.log_tail(tail, log)
    if code != 0 or run.timed_out:
        shared.fail(run.failure(proc.status_text(code, run.timed_out), tail))
    elif broken:
        shared.fail(run.failure("stopped reading its input before the end", tail))


def _write_sections(
    shared: _Shared,
    source: Callable[[], Iterator[bytes]],
    run: proc.Running,
    spool: IO[bytes],
    taken: tuple[int, Section],
) -> None:
    assert shared.preamble is not None
    run.stdin.write(shared.preamble)
    k, sec = taken
    offset = 0
    stream = source()
    try:
        for chunk in stream:
            start, offset = offset, offset + len(chunk)
            view = memoryview(chunk)
            pos = start  # the next byte of this chunk to consider
            while True:
                if sec.end < 0 or sec.end > pos:  # this chunk holds bytes of section k
                    sec, checked = shared.section(k, min(offset, sec.end) if sec.end >= 0 else offset)
                    upto = min(offset, checked if sec.end < 0 else sec.end)
                    for a, b in _pieces(sec, pos, upto):
                        run.stdin.write(view[a - start : b - start])
                        shared.count(b - a)
                    pos = max(pos, upto)
                    if pos < offset and sec.end < 0:
                        continue  # wait for the scan to check more of this chunk
                    if sec.end < 0 or sec.end > pos:
                        break  # the section goes on in the next chunk
                taken_next = shared.take()
                if taken_next is None:
                    layout = shared.layout
                    assert layout is not None
                    if k != len(layout.sections) - 1:
                        return
                    _spool(spool, view, start, offset, layout.tail_start)
                    for rest in stream:  # the client of the last section spools the tail
                        start, offset = offset, offset + len(rest)
                        _spool(spool, memoryview(rest), start, offset, layout.tail_start)
                    if offset != layout.size:
                        raise SourceError(
                            f"the dump read {offset} bytes, {layout.size} when it was scanned",
                            hint="The repository gave different bytes for the same file: run 'safehold check'.",
                        )
                    return
                k, sec = taken_next
                if sec.start >= offset:
                    break
        raise SourceError(f"the dump ended before {sec.name} did")
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _pieces(sec: Section, lo: int, hi: int) -> list[tuple[int, int]]:
    """The bytes of ``sec`` within [lo, hi) that are loaded (its skips left out)."""
    out = []
    at = max(lo, sec.start)
    for a, b in sec.skip:
        if b <= at:
            continue
        if a >= hi:
            break
        if a > at:
            out.append((at, min(a, hi)))
        at = max(at, b)
    if hi > at:
        out.append((at, hi))
    return out


def _spool(spool: IO[bytes], view: memoryview, start: int, end: int, tail_at: int) -> None:
    if end > tail_at:
        spool.write(view[max(start, tail_at) - start :])
