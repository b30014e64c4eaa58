"""Table statistics: what a dump contains, table by table, so that a restore can prove it reproduced it.

* :class:`MySQLDumpTally` watches a mysqldump/mariadb-dump stream as it passes into the repository and
  counts the rows of every ``INSERT INTO `t` VALUES (...),(...);`` statement per table (mysqldump writes
  one statement per line; MariaDB 10.11's mariadb-dump writes ``VALUES`` then one row per line), and
  hashes each table's data lines. These counts are *exact for the dump* (they are read from the dump
  itself), so they need no second, differently-timed view of the database.
* :func:`format_statistics` renders the readable ``table_statistics.txt``.
* :func:`compare` lists the differences between recorded and restored statistics.

The dump format relied on: lines of an INSERT statement break only between rows; inside string literals
the dump program escapes newline, carriage return, NUL, quote and backslash (so a raw newline never
occurs inside a value), and with ``--hex-blob`` binary values are ``0x...`` literals. Memory use is
bounded by the longest line (``net_buffer_length``, 1 MiB by default, or one very large row).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

_STRING = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
_INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` (?:\([^)]*\) )?VALUES ")
_INSERT_NL = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` (?:\([^)]*\) )?VALUES$")
_CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \(")


def _ident(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", errors="surrogateescape")


@dataclass
class TableTally:
    rows: int = 0
    data_bytes: int = 0
    sha: Any = field(default_factory=hashlib.sha256)


class MySQLDumpTally:
    """An observer for :class:`~safehold.sources.proc.ObservedStream`: per-table row counts of a dump."""

    def __init__(self) -> None:
        self.tables: dict[str, TableTally] = {}
        self._partial = b""
        self._current: TableTally | None = None
        self.longest_line = 0

    def __call__(self, block: bytes) -> None:
        data = self._partial + block if self._partial else block
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            self._line(data, start, nl)
            start = nl + 1
        self._partial = data[start:]

    def finish(self) -> None:
        """Account for a last line without a newline (a complete dump always ends with one)."""
        if self._partial:
            self._line(self._partial, 0, len(self._partial))
            self._partial = b""

    def _line(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:  # a continuation line of an INSERT (MariaDB: one row per line)
            self._values(self._current, data[start:end])
            return
        first = data[start : start + 1]
        if first not in (b"I", b"C"):
            return
        line = data[start:end]
        self.longest_line = max(self.longest_line, len(line))
        if first == b"C":
            m = _CREATE.match(line)
            if m:
                self.tables.setdefault(_ident(m.group(1)), TableTally())
            return
        m = _INSERT.match(line) or _INSERT_NL.match(line)
        if not m:
            return
        tally = self.tables.setdefault(_ident(m.group(1)), TableTally())
        tally.sha.update(line[: m.end()])
        self._current = tally
        self._values(tally, line[m.end() :])

    def _values(self, tally: TableTally, segment: bytes) -> None:
        """Count the rows in one line's worth of VALUES text; a trailing ';' ends the statement."""
        self.longest_line = max(self.longest_line, len(segment))
        tally.data_bytes += len(segment) + 1
        tally.sha.update(segment)
        tally.sha.update(b"\n")
        values = _STRING.sub(b"''", segment) if b"'" in segment else segment
        stripped = values.strip()
        if stripped.startswith(b"("):
            tally.rows += values.count(b"),(") + 1
        if stripped.endswith(b";"):
            self._current = None

    def result(self) -> dict[str, dict[str, Any]]:
        """``{table: {"rows": n, "data_bytes": n, "data_sha256": hex}}`` in table-name order."""
        self.finish()
        return {
            name: {"rows": t.rows, "data_bytes": t.data_bytes, "data_sha256": t.sha.hexdigest()}
            for name, t in sorted(self.tables.items())
        }


def format_statistics(title: str, tables: dict[str, dict[str, Any]], notes: list[str]) -> str:
    """The readable ``table_statistics.txt``: one line per table with rows (and checksum if known)."""
    width = max([len("table"), *(len(n) for n in tables)])
    lines = [title, ""]
    lines.append(f"{'table':<{width}}  {'rows':>12}  checksum")
    lines.append(f"{'-' * width}  {'-' * 12}  {'-' * 20}")
    total = 0
    for name, st in tables.items():
        rows = int(st.get("rows", 0))
        total += rows
        checksum = st.get("checksum")
        shown = "" if checksum is None else str(checksum)
        lines.append(f"{name:<{width}}  {rows:>12}  {shown}")
    lines.append(f"{'-' * width}  {'-' * 12}")
    lines.append(f"{'total':<{width}}  {total:>12}")
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines) + "\n"


def compare(
    expected: dict[str, dict[str, Any]],
    actual_rows: dict[str, int],
    actual_checksums: dict[str, Any] | None = None,
) -> list[str]:
    """Differences between recorded statistics and a restored database (empty when they agree).

    Row counts always count. Checksums count only where the recorded entry has one and says it
    describes the dump (``checksum_exact`` true).
    """
    problems: list[str] = []
    for name, st in expected.items():
        if name not in actual_rows:
            problems.append(f"table {name} missing after restore")
            continue
        if int(st.get("rows", 0)) != actual_rows[name]:
            problems.append(f"table {name}: {actual_rows[name]} rows restored, {st.get('rows')} in the dump")
        if (
            actual_checksums is not None
            and st.get("checksum_exact")
            and st.get("checksum") is not None
            and actual_checksums.get(name) != st.get("checksum")
        ):
            problems.append(f"table {name}: checksum {actual_checksums.get(name)} != {st.get('checksum')}")
    return problems
