"""The ``mysql`` source (MySQL and MariaDB): streamed mariadb-dump/mysqldump dumps and their restore.

Layout of the component folder, per database ``<db>``::

    <db>/full_dump.sql            mariadb-dump --single-transaction --routines --triggers --events --hex-blob
    <db>/schema_only.sql          the same without data (a separate, later run)
    <db>/table_statistics.json    rows per table as read from full_dump.sql itself, checksums (see below),
                                  data and index bytes on the server (table_bytes, index_bytes)
    <db>/table_statistics.txt     the same, readable
    <db>/tables/<table>.tsv       chosen tables as readable text (``text_exports``)

Consistency of the statistics: the row counts are counted *in the dump stream* while it passes into the
repository, so they describe exactly what ``full_dump.sql`` contains. ``CHECKSUM TABLE`` runs on the live
server right before and right after the dump; when both agree the table did not change during the dump
and the checksum is recorded with ``checksum_exact: true`` (a restore must reproduce it); otherwise it is
kept for information only. The schema-only dump and text exports are separate, later reads.

Privileges (MariaDB 10.11, measured): ``SELECT``, ``TRIGGER`` and ``EVENT`` on the database, ``SHOW VIEW``
where it has views. Routines need nothing more when the user can read their definitions: its own (the
app's user with ``ALL`` on its database, which defines them) or all of them (``SELECT ON mysql.proc``;
MySQL 8: ``SHOW_ROUTINE``). A routine defined by another user is listed in information_schema with its
definition hidden, and mariadb-dump cannot dump it; a user without any routine privilege on the database
(``SELECT`` only) is shown no routine at all, so it cannot rule any out. Without TRIGGER, EVENT or such
routines the dump *silently* loses objects, so a backup checks first (:func:`.client.privileges`) and
fails closed naming them, and treats the dump tool's own "insufficient privileges" notes (in the dump or
on stderr, exit status 0 or not) as a failure (:func:`check_mysql_privileges` is what ``safehold doctor``
prints). LOCK TABLES, RELOAD and PROCESS are not needed with ``--single-transaction --no-tablespaces``.

The password never appears in argv: the dump and client programs read it from a private option file,
created mode 0600 in a private directory and deleted afterwards. It is passed as ``--defaults-file=``
(the first argument), so it is the *only* option file they read: no ``/etc/mysql/my.cnf``, no
``~/.my.cnf``, the same settings pymysql uses. Every value written into it (user, password, host, socket)
is refused when it holds a line break or NUL (:mod:`safehold.syntax`): a password from a web-writable
``.env`` must never add options such as ``plugin-dir`` or ``default-auth``. Database names follow ``--``
on the command line, so a name starting with ``-`` is never read as an option.

Modules: :mod:`.options` (:class:`MySQLOptions`), :mod:`.client` (connection, option file, queries,
privileges), :mod:`.source` (:class:`MySQLSource`: backup), :mod:`.restore` (load and verify),
:mod:`.export` (its layout in ``safehold export``).
"""

from safehold.sources.mysql.client import check_mysql_privileges
from safehold.sources.mysql.options import MySQLOptions
from safehold.sources.mysql.restore import definer_filter
from safehold.sources.mysql.source import MySQLSource

__all__ = ["MySQLOptions", "MySQLSource", "check_mysql_privileges", "definer_filter"]
