"""The ``sqlite`` source: a consistent copy of a live SQLite database, and its restore.

Backup: SQLite's online backup API (``sqlite3.Connection.backup``) copies the database in one step while
holding a read transaction, so the copy is a consistent point-in-time image even while other processes
write (in WAL mode writers are not blocked; in rollback-journal mode they wait for the copy). The backup
API writes to a database file, so **the copy needs a temporary file** in a private directory (mode
0700, removed afterwards): its size is the database's size. The copy is then checked
(``PRAGMA integrity_check``), its tables are counted, and it is streamed into the repository.
``Connection.serialize()`` would avoid the file but holds the whole database in memory, which is not
bounded; the temporary file is the safer choice.

Layout::

    <file name>                 the consistent copy (e.g. ``app.sqlite3``)
    table_statistics.json/.txt  integrity check result, page size/count, rows and data/index bytes per table

Restore (restore option ``path`` to restore to another file, ``target_root`` below a folder): refuses an existing file unless ``ctx.force``;
writes a temporary file beside the target, verifies it (integrity check, row counts), then renames it
into place and removes a stale ``-wal``/``-shm`` of the old file (which would otherwise be applied to
the new one). Stop the application that uses the database first.

Modules: :mod:`.source`.
"""

from safehold.sources.sqlite.source import SQLiteOptions, SQLiteSource

__all__ = ["SQLiteOptions", "SQLiteSource"]
