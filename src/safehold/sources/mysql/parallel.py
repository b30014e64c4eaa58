"""Load a mariadb-dump stream through several connections at once, cut by :mod:`.split` while it loads.

One thread runs :func:`~.split.scan` over the stream. Every table loader (a *lane*) reads the stream
itself (``source`` opens it afresh, or it loads the stored chunks it needs and passes over the others:
see :class:`~.dumpread.Source`; the repository gives the same bytes each time, checked by hash) and claims
statements as the scan checks them, always further on in the stream than its last (so it only
ever reads forward), and sends each over its own connection behind the preamble's SET statements —
exactly the text a client sends, delimiter left out, without a client program parsing every byte once
more (the ``mariadb`` client costs about as much CPU as the server's parse on a dump of large INSERTs).
A lane takes the next table nobody has taken and claims its head (DROP, CREATE TABLE, ...) in order; the
table's rows (:attr:`~.split.Section.first_row`) are then claimed by any lane, up to
:data:`ROWS_PER_CLAIM` consecutive INSERTs at a time, and run once the head has run (a lane sends up to
:data:`COMMIT_EVERY` of them in one transaction); the rest of the table (ENABLE KEYS, triggers) is claimed in order by the lane that gets there first and runs
once every row has. So a big table is loaded by every connection, small ones side by side; a lane waits
for the head of a big table (:data:`SHARE_FROM`) rather than move past its rows. A second thread per
lane reads its next statement while the server runs one: memory stays bounded by one chunk and
:data:`READ_AHEAD` statements per lane. The first lane left with nothing to claim keeps reading and
spools the tail (views, routines, events: small) to a temporary file that spills to disk beyond 16 MiB;
when every lane is done, a ``mariadb`` client loads the preamble, the prelude and the tail (client
commands such as DELIMITER are the client's).

The first loader that fails stops the others; the server's error is in the
:class:`~safehold.errors.SourceError`. When the scan finds the dump cannot be cut after loaders started,
they are stopped and :class:`~.split.Unsplittable` is raised with ``args[1]`` true: what they loaded
were only checked statements on the target database's own tables, so the caller empties that database
and loads the dump through one client.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import pymysql

from safehold import proc
from safehold.errors import SourceError
from safehold.sources.mysql.dumpread import Source, close
from safehold.sources.mysql.split import MAX_PREAMBLE, Layout, Scanner, Section, Unsplittable, scan

#: The tail stays in memory up to this size, then goes to a temporary file.
TAIL_IN_MEMORY = 16 << 20
#: Statements a loader holds: the one the server runs and the next, read while it runs (claimed only
#: when there is room, so that the rows of a big table are shared out to the end).
READ_AHEAD = 2
#: A table with at least this many bytes of rows has them shared by every lane: the others wait for its
#: head rather than take the tables after it (which would put them past its rows). Smaller tables load
#: side by side, a table per lane.
SHARE_FROM = 4 << 20
#: Rows of one table a lane sends in one transaction (one commit, one log flush, for this many).
COMMIT_EVERY = 8
#: Rows of one table a lane claims at once (fewer towards the table's end): consecutive statements, so
#: that it loads a run of the dump's chunks and passes over the others' (see :class:`~.dumpread.Source`).
ROWS_PER_CLAIM = 8


class Stopped(Exception):
    """Raised inside a reader when another part failed."""


class _Lane:
    """One loader's place in the stream: it claims only statements that start at or after ``pos``."""

    def __init__(self) -> None:
        self.pos = 0
        self.run: _Run | None = None  # the section whose head or tail it claims, in order
        self.room = threading.Semaphore(READ_AHEAD)  # statements it may claim before one is sent
        self.rows: tuple[_Run, int, int] | None = None  # rows it has reserved: run, next, end


class _Run:
    """A section being loaded. Its statements before :attr:`~.split.Section.first_row` (the head) are
    claimed in order by the lane that took the section, its rows by any lane, the rest (the tail) in
    order by the lane that gets there first, which runs them once every row has run."""

    def __init__(self, sec: Section, owner: _Lane) -> None:
        self.sec = sec
        self.next = 0  # the next statement to claim
        self.owner: _Lane | None = owner  # claiming the head or the tail; None while rows are shared
        self.header = owner  # the lane that runs the head
        self.lanes: set[int] = set()  # the lanes that claimed its rows
        self.head_done = False
        self.tail = False
        self.outstanding = 0  # rows claimed that have not run yet
        self.done = False


def _waits_for(r: _Run) -> bool:
    """Whether a lane waits for the head of ``r`` to run rather than take the next section: when ``r``
    has at least :data:`SHARE_FROM` bytes of rows."""
    sec = r.sec
    if r.done or r.tail or r.owner is None or sec.end < 0 or sec.first_row < 0:
        return False
    return sec.statements[2 * sec.rows_end - 1] - sec.statements[2 * sec.first_row] >= SHARE_FROM


def _rows_to_come(r: _Run, lane: _Lane) -> bool:
    """Whether ``r`` has rows that ``lane`` may claim once another lane has run its head."""
    sec = r.sec
    if r.done or r.tail or r.owner is None or r.owner is lane or sec.first_row < 0:
        return False
    return sec.statements[2 * sec.first_row] >= lane.pos


class _Job:
    """A claimed statement: what its loader waits for before sending it (see :meth:`_Shared.before`)."""

    __slots__ = ("kind", "lane", "run")

    def __init__(self, run: _Run, kind: str, lane: _Lane) -> None:
        self.run, self.kind, self.lane = run, kind, lane


_DONE = object()


class _Shared:
    """What the scan and the table loaders share (under :attr:`cond`)."""

    def __init__(self, progress: Callable[[int], None] | None, every: int) -> None:
        self.cond = threading.Condition()
        self.sections: list[Section] = []  # the scanner's own list: appended to, never changed
        self.preamble: bytes | None = None
        self.preamble_statements: list[bytes] = []
        self.layout: Layout | None = None  # set when the scan is complete
        self.next = 0
        self.runs: list[_Run] = []  # every section taken (in stream order)
        self.active: list[_Run] = []  # those not done: what a claim looks through
        self.started = False  # a loader has claimed a statement
        self.spooler: _Lane | None = None
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
    def claim(self, lane: _Lane) -> tuple[_Job, int, int] | None:
        """The next statement ``lane`` sends (its job and where it is), waiting for the scan to check
        one; None when there is none left for it."""
        with self.cond:
            while True:
                if self.failure is not None:
                    raise Stopped
                got = self._claim(lane)
                if got is _DONE:
                    return None
                if isinstance(got, tuple):
                    self.started = True
                    lane.pos = got[2]
                    return got
                self.cond.wait()

    def _claim(self, lane: _Lane) -> object:
        if lane.rows is not None:  # the rows it reserved, in order
            r, i, end = lane.rows
            lane.rows = (r, i + 1, end) if i + 1 < end else None
            return _Job(r, "row", lane), r.sec.statements[2 * i], r.sec.statements[2 * i + 1]
        if lane.run is not None:  # the head or the tail it claims in order
            r, sec = lane.run, lane.run.sec
            closed = sec.end >= 0  # (read before the statements: they are all in when it is set)
            i = r.next
            if 2 * i + 1 < len(sec.statements):
                a, b = sec.statements[2 * i], sec.statements[2 * i + 1]
                r.next += 1
                if not r.tail and i == sec.first_row:  # the rows: any lane may claim them now
                    r.owner = lane.run = None
                    self._reserve(lane, r, i)
                    self.cond.notify_all()
                    return _Job(r, "row", lane), a, b
                return _Job(r, "tail" if r.tail else "head", lane), a, b
            if not closed:
                return None
            r.done, r.owner, lane.run = True, None, None
        self.active = [r for r in self.active if not r.done]
        for r in self.active:  # rows (or a tail) of the sections taken, earliest first
            sec = r.sec
            if r.owner is not None or r.done:
                continue
            closed = sec.end >= 0
            i = r.next
            if 2 * i + 1 >= len(sec.statements):
                if closed:
                    r.done = True
                continue
            a, b = sec.statements[2 * i], sec.statements[2 * i + 1]
            if a < lane.pos:
                continue
            if i < sec.rows_end:
                r.next += 1
                self._reserve(lane, r, i)
                return _Job(r, "row", lane), a, b
            r.owner, r.tail, lane.run = lane, True, r
            return self._claim(lane)
        if self.preamble is not None and self.next < len(self.sections):
            if any(_waits_for(r) for r in self.active):
                return None  # its rows are shared out soon: a lane past them could not take them
            r = _Run(self.sections[self.next], lane)
            self.next += 1
            self.runs.append(r)
            self.active.append(r)
            lane.run = r
            return self._claim(lane)
        if self.layout is not None and not any(_rows_to_come(r, lane) for r in self.active):
            return _DONE
        return None

    @staticmethod
    def _reserve(lane: _Lane, r: _Run, i: int) -> None:
        """Claim row ``i`` of ``r`` (``r.next`` already past it) and reserve the next ones for ``lane``,
        so that it reads a run of the dump rather than every other statement: up to
        :data:`ROWS_PER_CLAIM`, half of what is left once the scan has passed the table."""
        sec, left = r.sec, r.sec.rows_end - r.next
        take = min(ROWS_PER_CLAIM - 1, left // 2 if sec.end >= 0 else left)
        if take > 0:
            lane.rows = (r, r.next, r.next + take)
            r.next += take
        r.outstanding += 1 + take
        r.lanes.add(id(lane))

    def spools(self, lane: _Lane) -> bool:
        """Whether ``lane`` (with nothing left to claim) reads the tail: the first one to ask."""
        with self.cond:
            if self.spooler is None:
                self.spooler = lane
            return self.spooler is lane

    def before(self, job: _Job) -> None:
        """Wait until ``job`` may run: a row once its section's head has run (the head's own lane says
        so as it sends its first row), the tail once every row has run."""
        r = job.run
        if job.kind == "head":
            return
        with self.cond:
            if job.kind == "row" and job.lane is r.header:
                if not r.head_done:
                    r.head_done = True
                    self.cond.notify_all()
                return
            while not (r.head_done if job.kind == "row" else r.outstanding == 0):
                if self.failure is not None:
                    raise Stopped
                self.cond.wait()

    def after(self, job: _Job) -> None:
        if job.kind == "row":
            with self.cond:
                job.run.outstanding -= 1
                if job.run.outstanding == 0:
                    self.cond.notify_all()

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
    parts: Sequence[Callable[[], bytes]] | None = None,
    loaders: int,
    secrets: list[str | None],
    progress: Callable[[int], None] | None = None,
    progress_every: int = 64 << 20,
    log: Callable[[str], None] | None = None,
) -> tuple[proc.ProgramResult, Layout, int, int]:
    """Load the dump ``source()`` through ``loaders`` connections from ``connect()`` and the tail through
    the client ``argv`` (see the module docstring). ``parts``: the same stream as one loader per stored
    chunk (see :class:`~.dumpread.Source`). Returns the bytes of the stream with the seconds
    taken, the layout, the number of loaders that had work and the number of tables whose statements
    went over more than one connection. Raises :class:`~.split.Unsplittable` or SourceError."""
    started = time.monotonic()
    shared = _Shared(progress, progress_every)
    used: list[int] = []
    dump = Source(source, parts)
    with tempfile.SpooledTemporaryFile(max_size=TAIL_IN_MEMORY, prefix="safehold-tail-") as spool:
        threads = [threading.Thread(target=_scan, args=(shared, dump), name="mysql-split", daemon=True)]
        threads += [
            threading.Thread(
                target=_loader, args=(shared, dump, connect, spool, used), name=f"mysql-load-{i}"
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
    shared_tables = sum(len(r.lanes) > 1 for r in shared.runs)
    return proc.ProgramResult(res.tool, layout.size, seconds, res.stderr), layout, len(used), shared_tables


def _scan(shared: _Shared, dump: Source) -> None:
    stream = dump.for_scan()
    try:
        layout = scan(stream, shared.watch)
    except Stopped:
        return
    except BaseException as exc:  # Unsplittable, or the repository's error: handed to the caller
        shared.done(None, exc)
        return
    finally:
        close(stream)
    shared.done(layout, None)


def _loader(
    shared: _Shared,
    dump: Source,
    connect: Callable[[], Any],
    spool: IO[bytes],
    used: list[int],
) -> None:
    """One table loader: send the statements its read-ahead thread (:func:`_read_ahead`) claims and
    reads while the server runs the one before, over a connection opened for the first of them."""
    lane = _Lane()
    ahead: queue.Queue[tuple[_Job, int, bytes] | BaseException | None] = queue.Queue()
    reader = threading.Thread(
        target=_read_ahead, args=(shared, dump, spool, lane, ahead), name="mysql-read-ahead", daemon=True
    )
    reader.start()
    conn = None
    batch: list[_Job] = []  # rows sent in the open transaction

    def commit() -> None:
        assert conn is not None
        conn.commit()
        for done in batch:
            shared.after(done)
        batch.clear()

    try:
        while (item := _next(shared, ahead, reader)) is not None:
            if isinstance(item, BaseException):
                raise item
            job, at, text = item
            if conn is None:
                used.append(1)
                conn = connect()
                for stmt in shared.preamble_statements:
                    conn.query(stmt)
            if batch and (job.kind != "row" or job.run is not batch[0].run or len(batch) >= COMMIT_EVERY):
                commit()
            shared.before(job)
            if job.kind == "row" and not batch:
                conn.begin()
            try:
                conn.query(text)
            except pymysql.MySQLError as exc:
                sec = job.run.sec
                raise SourceError(
                    f"the server refused a statement of {'view' if sec.view else 'table'} {sec.name} "
                    f"(at byte {at} of the dump): {exc}"
                ) from None
            lane.room.release()
            shared.count(len(text))
            if job.kind != "row":
                shared.after(job)
                continue
            batch.append(job)
            if ahead.empty():  # (never waits for the next with a transaction open)
                commit()
        if batch:
            commit()
    except Stopped:
        return
    except pymysql.MySQLError as exc:
        shared.fail(SourceError(f"loading the dump failed: {exc}"))
    except BaseException as exc:
        shared.fail(exc)
    finally:
        if conn is not None:
            conn.close()
        reader.join()


def _next(
    shared: _Shared,
    ahead: queue.Queue[tuple[_Job, int, bytes] | BaseException | None],
    reader: threading.Thread,
) -> tuple[_Job, int, bytes] | BaseException | None:
    """The next item the read-ahead thread put, or Stopped once another part failed or it ended."""
    while True:
        try:
            return ahead.get(timeout=0.5)
        except queue.Empty:
            if shared.failure is not None or not reader.is_alive():
                return Stopped()


def _read_ahead(
    shared: _Shared,
    dump: Source,
    spool: IO[bytes],
    lane: _Lane,
    ahead: queue.Queue[tuple[_Job, int, bytes] | BaseException | None],
) -> None:
    """Put the statements ``lane`` claims into ``ahead`` (then None, or the error), each claimed when
    its loader has room for it; the first lane with nothing left to claim spools the tail."""

    def room() -> None:
        while not lane.room.acquire(timeout=0.5):
            if shared.failure is not None:
                raise Stopped

    reader = dump.reader()
    try:
        while True:
            room()
            if (claimed := shared.claim(lane)) is None:
                break
            job, a, b = claimed
            ahead.put((job, a, reader.read(a, b, f"a statement of {job.run.sec.name}")))
        layout = shared.layout
        assert layout is not None
        if shared.spools(lane):
            for block in reader.rest(layout.tail_start):
                spool.write(block)
            if reader.start + len(reader.chunk) != layout.size:
                raise SourceError(
                    f"the dump read {reader.start + len(reader.chunk)} bytes, {layout.size} when it was scanned",
                    hint="The repository gave different bytes for the same file: run 'safehold check'.",
                )
        ahead.put(None)
    except Stopped:
        ahead.put(Stopped())
    except BaseException as exc:
        shared.fail(exc)
        ahead.put(Stopped())
    finally:
        reader.close()
