"""The ``postgresql`` source: ``pg_dump`` custom-format dumps streamed into the repository, and restore
with ``pg_restore``.

Layout of the component folder::

    globals.sql                     pg_dumpall --globals-only (roles, tablespaces) when permitted
    <db>/dump.pgcustom              pg_dump --format=custom -Z0 (uncompressed: the repository compresses
                                    and deduplicates; a compressed dump would defeat deduplication)
    <db>/table_statistics.json      rows, an order-independent md5 and data/index bytes per table; the .txt

Consistency: safehold opens a REPEATABLE READ transaction, exports its snapshot
(``pg_export_snapshot()``) and runs ``pg_dump --snapshot=<it>``; the row counts and checksums are then
computed in that same transaction, so they describe exactly the data in the dump. Where a snapshot cannot
be exported (a hot standby before PostgreSQL 10, missing privileges) the statistics are taken right after
the dump and marked ``"exact": false``.

Checksums: ``md5(string_agg(md5(row::text), '' ORDER BY md5(row::text)))`` per table, with the text
settings pinned (UTC, ISO dates, extra_float_digits=3, hex bytea) on both backup and restore.
Globals: ``pg_dumpall --globals-only`` needs a superuser; otherwise ``--no-role-passwords`` is tried, and
if that is refused too, ``globals`` is recorded as ``"not permitted"`` (the backup goes on).
The password is passed in ``PGPASSWORD`` to the child only, never in argv; it, the host and the user are
refused when they hold a line break or NUL (:mod:`safehold.syntax`). pg_dump, pg_restore and pg_dumpall
read a database name as a connection string when it contains ``=`` (``host=... dbname=...`` would
redirect them), so names always go to them encoded as ``dbname='<name>'``.

Modules: :mod:`.options` (:class:`PostgreSQLOptions`, :class:`PostgreSQLRestoreOptions`), :mod:`.client`
(connection settings, queries, the exported snapshot), :mod:`.source` (:class:`PostgreSQLSource`: backup,
preflight, restore), :mod:`.export` (its layout in ``safehold export``).
"""

from safehold.sources.postgresql.client import table_statistics
from safehold.sources.postgresql.options import PostgreSQLOptions
from safehold.sources.postgresql.source import PostgreSQLSource

__all__ = ["PostgreSQLOptions", "PostgreSQLSource", "table_statistics"]
