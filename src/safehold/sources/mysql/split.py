"""Where a stored mariadb-dump stream may be cut into per-table parts that load in parallel.

:func:`scan` reads the (untrusted) dump once and returns a :class:`Layout` — the preamble, one section
per table (and per view stand-in), the tail — or raises :class:`Unsplittable` with the reason the dump
must be loaded by one client. The parts are contiguous byte ranges of the stream: ``preamble | section 1
| ... | section n | tail``. Each section goes to one client after the preamble; the tail (final views,
routines, events, the closing SET statements) goes to one client after every section is loaded, behind
the preamble and :attr:`Layout.prelude`. The scan also records where each statement of the preamble and
of the sections begins and ends (:attr:`Section.statements`), so that a loader can send them to the
server one by one without a client program (LOCK TABLES and UNLOCK TABLES left out, see there).

A cut is only made where loading the parts gives what a single ``mariadb`` client loads from the whole
stream. The scanner mirrors the client's lexer (``client/mysql.cc``: quotes with backslash escapes,
``-- `` and ``#`` comments, executable ``/*!`` comments, ``DELIMITER``); where the client's reading is
not certain (a backslash or ``delimiter `` outside quotes, a plain ``/*`` comment, ``/*M!`` after the
first line, a delimiter inside ``/*!...*/``) the tail starts, and a table after that start means no cut
at all. Cuts are made only right after a statement's terminating line, before a ``-- Table structure for
table`` (or ``-- Temporary table structure for view``) comment. Every statement of a table's section
must be one mariadb-dump writes for that table: ``DROP TABLE IF EXISTS``, ``CREATE TABLE`` (no
``SELECT``), ``LOCK``/``UNLOCK TABLES``, ``ALTER TABLE ... DISABLE/ENABLE KEYS``, ``INSERT``/``REPLACE``
whose rows hold literals only (quoted strings, numbers, hex, NULL), triggers ``ON`` that table after its
rows, and ``SET`` of the character-set variables and ``sql_mode`` (never with ANSI quotes or without
backslash escapes) that the section restores before it ends, so that every part's session starts as the
single client's would. A view's section holds only its stand-in (``CREATE VIEW ... AS SELECT NULL AS
...``). The preamble may hold only such SET statements and must turn off foreign-key checks. Memory is
bounded by the longest line (as for :class:`~safehold.sources.dbstats.MySQLDumpTally`).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: A single-quoted or double-quoted string with backslash escapes; a backquoted name (no backslash).
_Q = rb"'(?:[^'\\]++|\\.)*+'|\"(?:[^\"\\]++|\\.)*+\"|`[^`\\]*+`"
#: Text the client passes as is: everything up to a quote, terminator, comment, backslash, line end,
#: or a ``delimiter `` (which the client takes as its command anywhere outside quotes).
_RUN = re.compile(
    rb"(?:[^'\"`\\;#/\-*\ndD]++|[dD](?!(?i:elimiter ))|-(?!-\s)|/(?!\*)|\*(?!/)|" + _Q + rb")*+", re.DOTALL
)
#: A literal as mariadb-dump writes it (hex before numbers: the repetitions around it never backtrack).
_VALUE = rb"(?:'(?:[^'\\]++|\\.)*+'|0x[0-9A-Fa-f]*+|-?[0-9.][0-9.eE+\-]*+|NULL|_binary ?'(?:[^'\\]++|\\.)*+'|b'[01]*+')"
_ROW = rb"\((?:" + _VALUE + rb"(?:," + _VALUE + rb")*+)?\)"
#: Rows each followed by a comma (MariaDB: one per line; MySQL: all on the statement's line).
_ROWS = re.compile(rb"(?:\s*+" + _ROW + rb"\s*+,)*+\s*+", re.DOTALL)
_LAST_ROW = re.compile(rb"\s*+" + _ROW + rb"\s*+;[ \t]*\n", re.DOTALL)
_NAME = rb"`((?:[^`\n]|``)+)`"
_INSERT_HEAD = re.compile(
    rb"(INSERT(?: IGNORE)?|REPLACE) INTO " + _NAME + rb" (\((?:`(?:[^`\n]|``)+`(?:, ?)?)+\) )?VALUES"
)
_HEADER = re.compile(rb"-- (Table structure for table|Temporary table structure for view) " + _NAME + rb"\n")
_DATA_HEADER = re.compile(rb"-- Dumping data for table " + _NAME + rb"\n")
_SANDBOX = re.compile(rb"/\*M!999999\\- enable the sandbox mode \*/ ?\n")
_STRING = re.compile(_Q, re.DOTALL)
_TAIL_HEADER = re.compile(rb"^-- (?:Table structure for table|Temporary table structure for view) ", re.M)
#: The stand-in mariadb-dump creates for a view before the tables it reads exist (the tail replaces it).
_STAND_IN = re.compile(
    rb"/\*!50001 CREATE VIEW `((?:[^`]|``)+)` AS SELECT\s+(?:(?:NULL|1) AS `(?:[^`]|``)*`,?\s*)+\*/"
)
_SET = re.compile(rb"(?:/\*!\d{5} )?SET (.*?)(?: \*/)?\s*$", re.DOTALL | re.IGNORECASE)
_ASSIGN = re.compile(rb"\s*(@?\w+)\s*=\s*('[^'\\]*'|@@\w+|@\w+|\w+)\s*(?:,|$)")
_TRIGGER = re.compile(
    rb"/\*!50003 CREATE\*/ (?:/\*!50017 (?:DEFINER=\S+ ?)?\*/ )?/\*!50003 TRIGGER\s+(?:`(?:[^`]|``)+`|\w+)\s+"
    rb"(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+(`(?:[^`]|``)+`|\w+)\s+FOR\s+EACH\s+ROW\b",
    re.IGNORECASE,
)
#: Session variables a table's section may set (and must restore): mariadb-dump's own.
_SECTION_VARS = {b"character_set_client", b"character_set_results", b"collation_connection", b"sql_mode"}
_PREAMBLE_VARS = _SECTION_VARS | {b"time_zone", b"unique_checks", b"foreign_key_checks", b"sql_notes"}
#: The longest statement other than INSERT that is kept to be classified, and the longest preamble.
MAX_STATEMENT = 16 << 20
MAX_PREAMBLE = 64 << 10
MAX_LINE = 256 << 20


class Unsplittable(Exception):
    """Why the dump is loaded by a single client."""


@dataclass
class Section:
    name: str
    start: int
    end: int = -1
    #: the stand-in of a view (``CREATE VIEW ... AS SELECT NULL AS ...``), not a table
    view: bool = False
    #: where its statements are, as ``start, end`` pairs (from the first byte to the delimiter, which
    #: is left out as a client leaves it out). LOCK TABLES and UNLOCK TABLES are not among them: with
    #: another client creating a table that refers to this one, a locked table's inserts would need
    #: that table locked too. Appended to while the scan runs (``extend``: a pair at a time).
    statements: array[int] = field(default_factory=lambda: array("q"))
    #: statement indexes ``first_row <= i < rows_end`` (-1: none) are INSERTs of this table that may
    #: run on any connection in any order once every statement before them has run, and before any
    #: statement after them runs: plain ``INSERT INTO `t` VALUES`` (every column given, no IGNORE or
    #: REPLACE), one after another, in the session state every part starts with (no section variable
    #: changed), before any trigger. For mariadb-dump's rows (explicit keys, literal values) the order
    #: does not change the table; a row giving NULL for an AUTO_INCREMENT column, which mariadb-dump
    #: never writes, may get its generated value in another order. Set before the statement is
    #: appended; the run is complete once statement ``rows_end`` exists or the section has ended.
    first_row: int = -1
    rows_end: int = -1


@dataclass
class Layout:
    """Where the parts of a dump are (byte offsets into the stream as read)."""

    preamble: bytes
    sections: list[Section]
    size: int
    #: SET statements that give the tail's client the user variables the sections left behind.
    prelude: bytes = b""
    #: where the preamble's statements are (``start, end`` pairs, as in :attr:`Section.statements`)
    preamble_statements: list[tuple[int, int]] = field(default_factory=list)

    @property
    def tail_start(self) -> int:
        return self.sections[-1].end


def _ident(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", errors="replace")


def _assignments(stmt: bytes) -> list[tuple[bytes, bytes]] | None:
    m = _SET.fullmatch(stmt.strip())
    if not m:
        return None
    body, out, pos = m.group(1).strip(), [], 0
    if re.fullmatch(rb"NAMES \w+", body, re.IGNORECASE):
        return [(b"names", body[6:].lower())]
    while pos < len(body):
        a = _ASSIGN.match(body, pos)
        if not a or a.end() == pos:
            return None
        out.append((a.group(1).lower(), a.group(2)))
        pos = a.end()
    return out or None


def _sql_mode_ok(value: bytes) -> bool:
    upper = value.upper()
    return b"ANSI" not in upper and b"NO_BACKSLASH_ESCAPES" not in upper


class Scanner:
    """The lexer and the part assignment; :func:`scan` feeds it whole lines. A ``watch`` of :func:`scan`
    may read :attr:`sections` (the last one's ``end`` is -1 while it is open; statements are appended as
    they are checked), :attr:`head` (the first bytes: the preamble) and :attr:`preamble_statements`."""

    def __init__(self) -> None:
        self.base = 0  # absolute offset of the block being lexed
        self.size = 0
        self.mode = b""  # b"" outside quotes, else the open quote
        self.comment = False  # inside /*! ... */
        self.delimiter = b";"
        self.pending = False  # statement text since the last terminator
        self.stmt = bytearray()
        self.rows = False  # inside an INSERT's rows
        self.plain = False  # those rows are a plain INSERT INTO `t` VALUES in the parts' session state
        self.boundary = 0  # just after the last terminator's line: where a cut may be
        self.clean = True  # nothing after that terminator
        self.stmt_boundary = -1
        self.part = "preamble"
        self.sections: list[Section] = []
        self.names: set[bytes] = set()
        self.current = b""
        self.triggered = False
        self.view = False
        self.fk_off = False
        self.saved: dict[bytes, bytes] = {}
        self.section_vars: dict[bytes, bytes] = {}
        self.section_users: dict[bytes, bytes] = {}
        self.head = bytearray()
        self.delim_from = self.delim_to = -1
        self.leave_out = False  # LOCK/UNLOCK TABLES: not among the section's statements
        self.stmt_start = self.term_at = 0
        self.preamble_statements: list[tuple[int, int]] = []

    # ---- lexing ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Lex ``data``, whole lines."""
        self.base, n = self.size, len(data)
        self.size += n
        if len(self.head) < MAX_PREAMBLE:
            self.head += data[: MAX_PREAMBLE - len(self.head)]
        pos = 0
        if self.base == 0:
            m = _SANDBOX.match(data)
            if m:
                pos = self.boundary = m.end()
        if self.part != "tail" and (b"\x00" in data or b"\r" in data):  # sent as is, read otherwise
            self._uncertain(pos, "a NUL or carriage return byte outside the tail")
        while pos < n:
            if self.part == "tail":
                if _TAIL_HEADER.search(data, pos):
                    raise Unsplittable("a table follows the views, routines or events")
                return
            if self.rows:
                pos = self._rows(data, pos)
                continue
            if self.mode:
                pos = self._in_quote(data, pos)
                continue
            if not self.pending and data[pos] not in b" \t\r\n":
                pos = self._statement_start(data, pos)
                continue
            pos = self._lex(data, pos)

    def _lex(self, data: bytes, pos: int) -> int:
        end = _RUN.match(data, pos).end()  # type: ignore[union-attr]  # (matches the empty string)
        if end > pos:
            self._text(data, pos, end)
        pos = end
        if pos >= len(data):
            return pos
        c = data[pos]
        if c == 0x0A:  # \n
            return pos + 1
        if c == 0x3B:  # ;
            if self.delimiter == b";;" and data[pos : pos + 2] != b";;":
                self._text(data, pos, pos + 1)
                return pos + 1
            if self.comment:
                return self._uncertain(pos, "a statement ends inside /*! ... */")
            self.term_at = self.base + pos
            self._end_statement()
            return self._after_terminator(data, pos + len(self.delimiter))
        if c in b"'\"`":
            self.mode = data[pos : pos + 1]
            self._text(data, pos, pos + 1)
            return pos + 1
        if c == 0x5C:  # backslash
            return self._uncertain(pos, "a backslash outside quotes (a client command)")
        if c in b"#-":
            return data.find(b"\n", pos)  # a comment to the end of the line
        if c == 0x2F:  # /
            if data[pos : pos + 3] != b"/*!" or self.comment:
                return self._uncertain(pos, "a /* comment */, /*M! or nested /*! outside the first line")
            self.comment = True
            self._text(data, pos, pos + 3)
            return pos + 3
        if c == 0x2A:  # * of */
            if not self.comment:
                return self._uncertain(pos, "*/ outside a comment")
            self.comment = False
            self._text(data, pos, pos + 2)
            return pos + 2
        return self._uncertain(pos, "'delimiter' outside quotes inside a statement")

    def _in_quote(self, data: bytes, pos: int) -> int:
        q, i = self.mode, pos
        while True:
            j, k = data.find(q, i), data.find(b"\\", i)
            if k != -1 and (j == -1 or k < j):
                if q == b"`":
                    return self._uncertain(pos, "a backslash inside a backquoted name")
                i = k + 2  # blocks end with a line break: the escaped byte is in this block
                continue
            if j == -1:
                self._text(data, pos, len(data))
                return len(data)
            self.mode = b""
            self._text(data, pos, j + 1)
            return j + 1

    def _text(self, data: bytes, start: int, end: int) -> None:
        if not self.pending:
            seg = data[start:end]
            if not seg.strip():
                return
            self.pending = True
            self.stmt_start = self.base + start + len(seg) - len(seg.lstrip())
            self.stmt_boundary = self.boundary if self.clean else -1
            self.stmt = bytearray()
        self.stmt += data[start:end]
        if len(self.stmt) > MAX_STATEMENT:
            raise Unsplittable("a statement other than INSERT longer than 16 MiB")

    def _after_terminator(self, data: bytes, pos: int) -> int:
        nl = data.find(b"\n", pos)
        if data[pos:nl].strip():
            self.clean = False
            return pos
        self.boundary, self.clean = self.base + nl + 1, True
        return nl + 1

    def _statement_start(self, data: bytes, pos: int) -> int:
        """A statement, comment or client command starts at ``pos`` (nothing pending)."""
        nl = data.find(b"\n", pos)
        line = data[pos : nl + 1]
        if line.startswith((b"-- Table structure for table ", b"-- Temporary table structure for view ")):
            self._table_header(line)
            return nl + 1
        if line.startswith(b"-- Dumping data for table "):
            m = _DATA_HEADER.fullmatch(line)
            if self.part == "section" and (not m or m.group(1) != self.current or self.view):
                return self._uncertain(pos, "a data header of another table inside a table's section")
            return nl + 1
        if line[:10].lower() == b"delimiter ":
            if line not in (b"DELIMITER ;;\n", b"DELIMITER ;\n") or not self.clean:
                return self._uncertain(pos, f"an unexpected client command {line[:40]!r}")
            self.delim_from = self.boundary if self.clean else -1  # a part may end before this line
            self.delimiter = line[10:-1]
            self.boundary = self.delim_to = self.base + nl + 1
            return nl + 1
        if line[:1] in b"IR":
            m = _INSERT_HEAD.match(line)
            if m:
                self.pending, self.stmt_boundary = True, self.boundary if self.clean else -1
                self.stmt_start = self.base + pos
                if (
                    self.part == "section"
                    and m.group(2) == self.current
                    and not self.triggered
                    and (self.delimiter == b";")
                ):
                    self.rows = True
                    self.plain = m.group(1) == b"INSERT" and not (
                        m.group(3) or self.section_vars or self.comment or self.view
                    )
                    return pos + m.end()
                self.stmt = bytearray()
                self._leave()
                return pos
        return self._lex(data, pos)

    def _rows(self, data: bytes, pos: int) -> int:
        pos = _ROWS.match(data, pos).end()  # type: ignore[union-attr]
        last = _LAST_ROW.match(data, pos)
        if last:
            term = self.base + data.rindex(b";", pos, last.end())
            sec = self.sections[-1]
            i = len(sec.statements) // 2
            if self.plain and sec.first_row < 0:
                sec.first_row, sec.rows_end = i, i + 1
            elif self.plain and sec.rows_end == i:
                sec.rows_end = i + 1
            sec.statements.extend((self.stmt_start, term))
            self.rows = self.pending = False
            self.boundary, self.clean = self.base + last.end(), True
            return last.end()
        if pos == len(data):
            return pos
        return self._uncertain(pos, f"a row of other than literal values (at byte {self.base + pos})")

    def _uncertain(self, pos: int, reason: str) -> int:
        """Something the client may read otherwise than this lexer: the tail starts at the statement's
        clean boundary (nothing before it is in doubt; no table may follow), or the dump is not cut."""
        start = self.stmt_boundary if self.pending else (self.boundary if self.clean else -1)
        if self.part == "section" and start >= 0:
            self._close_section(start)
        elif self.part != "preamble":
            raise Unsplittable(reason)
        self.part = "tail"
        return pos

    # ---- parts -----------------------------------------------------------------------------------
    def _table_header(self, line: bytes) -> None:
        m = _HEADER.fullmatch(line)
        if not m or self.comment or self.delimiter != b";" or not self.clean:
            raise Unsplittable("a table header where no statement ends")
        name = m.group(2)
        if name in self.names:
            raise Unsplittable(f"table {_ident(name)} appears twice")
        if self.part == "tail":
            raise Unsplittable("a table follows the views, routines or events")
        if self.part == "preamble" and not self.fk_off:
            raise Unsplittable("the preamble does not turn foreign key checks off")
        self._close_section(self.boundary)
        self.part, self.current, self.triggered = "section", name, False
        self.view = m.group(1).startswith(b"Temporary")
        self.names.add(name)
        self.sections.append(Section(_ident(name), self.boundary, view=self.view))
        self.section_vars, self.section_users = {}, {}

    def _end_statement(self) -> None:
        stmt = bytes(self.stmt).strip()
        self.pending, self.stmt = False, bytearray()
        part, self.leave_out = self.part, False
        fits = self._preamble_set if part == "preamble" else self._section_statement
        if part == "tail":
            return
        if not fits(stmt):
            self._leave()
        elif part == "preamble":
            self.preamble_statements.append((self.stmt_start, self.term_at))
        elif not self.leave_out:
            self.sections[-1].statements.extend((self.stmt_start, self.term_at))

    def _leave(self) -> None:
        """A statement that belongs to no table: the tail starts at the clean boundary before it."""
        if self.part == "section":
            if self.stmt_boundary < 0:
                raise Unsplittable("the tail starts where no statement ends")
            self._close_section(self.stmt_boundary)
        self.part = "tail"

    def _close_section(self, end: int) -> None:
        if self.part != "section":
            return
        name = self.sections[-1].name
        if self.section_vars:
            raise Unsplittable(f"table {name}'s section leaves session variables changed")
        if self.delimiter == b";;" and end == self.delim_to and self.delim_from >= 0:
            end = self.delim_from  # the tail starts with its own DELIMITER ;; line
        elif self.delimiter != b";" or self.comment:
            raise Unsplittable(f"table {name}'s section leaves the delimiter changed")
        for var, value in self.section_users.items():
            if self.saved.setdefault(var, value) != value:
                raise Unsplittable(f"variable @{var.decode()} differs between tables")
        self.sections[-1].end = end

    def _preamble_set(self, stmt: bytes) -> bool:
        pairs = _assignments(stmt)
        if pairs is None:
            return False
        for var, value in pairs:
            if var.startswith(b"@"):
                if not (value.startswith(b"@@") and value[2:].lower() in _PREAMBLE_VARS):
                    return False
            elif var in _PREAMBLE_VARS or var == b"names":
                if value.startswith(b"@") or (var == b"sql_mode" and not _sql_mode_ok(value)):
                    return False
                if var == b"foreign_key_checks":
                    self.fk_off = value == b"0"
            else:
                return False
        return True

    def _section_statement(self, stmt: bytes) -> bool:
        if _SET.fullmatch(stmt):
            return self._section_set(stmt)
        name = b"`" + self.current + b"`"
        if self.view:  # a view's stand-in: dropped and replaced by the tail
            m = _STAND_IN.fullmatch(stmt)
            return bool(m and m.group(1) == self.current) or stmt in (
                b"DROP TABLE IF EXISTS " + name,
                b"/*!50001 DROP VIEW IF EXISTS " + name + b"*/",
            )
        if self.triggered:  # after a trigger only its SET lines and further triggers
            return self._trigger(stmt)
        if stmt in (b"LOCK TABLES " + name + b" WRITE", b"UNLOCK TABLES"):
            self.leave_out = True
            return True
        if stmt in (
            b"DROP TABLE IF EXISTS " + name,
            b"/*!40000 ALTER TABLE " + name + b" DISABLE KEYS */",
            b"/*!40000 ALTER TABLE " + name + b" ENABLE KEYS */",
        ):
            return True
        if stmt.startswith(b"CREATE TABLE " + name + b" ("):
            return b"SELECT" not in _STRING.sub(b"''", stmt).upper()
        return self._trigger(stmt)

    def _trigger(self, stmt: bytes) -> bool:
        m = _TRIGGER.match(stmt)
        if not m:
            return False
        if m.group(1) not in (b"`" + self.current + b"`", self.current):
            raise Unsplittable(f"a trigger in table {self.sections[-1].name}'s section is on another table")
        self.triggered = True
        return True

    def _section_set(self, stmt: bytes) -> bool:
        pairs = _assignments(stmt)
        if pairs is None:
            return False
        for var, value in pairs:
            if value.startswith(b"@@"):
                sysvar = value[2:].lower()
                if sysvar not in _SECTION_VARS:
                    return False
                resolved = self.section_vars.get(sysvar, b"@@" + sysvar)
            elif value.startswith(b"@"):
                if value[1:].lower() not in self.section_users:
                    return False  # reads a user variable this section did not set
                resolved = self.section_users[value[1:].lower()]
            else:
                resolved = value
            if var.startswith(b"@saved_"):
                self.section_users[var[1:]] = resolved
            elif var in _SECTION_VARS:
                if var == b"sql_mode" and not _sql_mode_ok(value):
                    raise Unsplittable("the dump sets an sql_mode the client reads differently")
                if resolved == b"@@" + var:
                    self.section_vars.pop(var, None)  # restored
                else:
                    self.section_vars[var] = resolved
            else:
                return False
        return True


def scan(chunks: Iterable[bytes], watch: Callable[[Scanner], None] | None = None) -> Layout:
    """The parts of the dump ``chunks`` (see the module docstring); raises :class:`Unsplittable`.
    ``watch(scanner)`` is called after each block (see :class:`Scanner`)."""
    sc = Scanner()
    partial = b""
    for chunk in chunks:
        data = partial + chunk if partial else chunk
        cut = data.rfind(b"\n") + 1
        partial = data[cut:]
        if cut:
            sc.feed(data[:cut] if cut < len(data) else data)
            if watch is not None:
                watch(sc)
        if len(partial) > MAX_LINE:
            raise Unsplittable("a line longer than 256 MiB")
    if partial:
        raise Unsplittable("the dump does not end with a line break")
    if sc.part == "section":
        if sc.pending or sc.rows or sc.mode:
            raise Unsplittable("the dump ends inside a statement")
        sc._close_section(sc.size)
    if not sc.sections:
        raise Unsplittable("no table sections (not mariadb-dump's layout)")
    first = sc.sections[0].start
    if first > len(sc.head):
        raise Unsplittable("a preamble longer than 64 KiB")
    prelude = b"".join(b"SET @" + var + b" = " + value + b";\n" for var, value in sorted(sc.saved.items()))
    return Layout(bytes(sc.head[:first]), sc.sections, sc.size, prelude, sc.preamble_statements)
