"""MariaDB's sandbox line: the first line mariadb-dump (MariaDB >= 10.5.25 / 10.11.8 / 11.x) writes.

``/*M!999999\\- enable the sandbox mode */`` makes MariaDB's client refuse client commands (``\\!`` shell,
``\\.`` source ...) for the rest of the file, a guard against dumps of hostile object names. MySQL's
client reads the ``\\-`` as an unknown command and stops at line 1 ("Unknown command '\\-'"). So the dump
is stored as written (the repository holds exactly what the tool wrote), and the line is removed where the
file goes to a MySQL client: by ``export`` (whose ``full_dump.sql.gz`` must load with either client; its
RESTORE.md says to load it with ``mariadb --sandbox`` where MariaDB's client is used) and by a restore
whose client program is MySQL's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

#: The line as MariaDB writes it (with or without its trailing space), newline included.
SANDBOX_LINE = re.compile(rb"/\*M!999999\\- enable the sandbox mode \*/ ?\r?\n")
#: The longest first line that is looked at (the sandbox line is 42 bytes).
_LOOK = 128


def without_sandbox_line(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` with a first line that is exactly MariaDB's sandbox line left out; all else unchanged."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if b"\n" in head or len(head) >= _LOOK:
            break
    m = SANDBOX_LINE.match(head)
    if m:
        head = head[m.end() :]
    if head:
        yield head
    yield from it


def is_mariadb_client(version: str) -> bool:
    """Whether a client's ``--version`` text is MariaDB's (which understands the sandbox line)."""
    return "mariadb" in version.lower()
