"""The ``redis`` source: an RDB snapshot streamed from the running server, plus a per-key export.

Layout of the component folder::

    dump.rdb        ``redis-cli --rdb -``: the server forks and sends a point-in-time RDB of every
                    database, streamed into the repository (redis-cli 7.0 leaves the 40-byte EOF mark of
                    diskless replication at the end of its stdout; it is recognised and cut off, and the
                    RDB must end with its EOF opcode and checksum, otherwise the dump is truncated)
    keys.dump       every key as ``DUMP`` payload with its remaining TTL: a msgpack stream of
                    ``{"db", "key", "pttl", "value"}`` maps after one header map (keys are read with SCAN,
                    so this export is not a point-in-time image: keys written during the scan may be
                    missing or newer; the RDB is the consistent copy)
    keyspace.json   server version, key counts per database and per type

Restore (restore option ``mode``; connection overrides from ``restore --redis-*``/``--db-*``):

* ``"live"`` (default): RESTORE each key of keys.dump into a running server (``host``/``port``/
  ``socket``/``username``/``password``/``db`` overrides; ``db`` puts every key into that one database),
  TTLs as they were at backup time (relative). Existing keys are refused unless forced (REPLACE).
* ``"rdb"``: write dump.rdb to the restore option ``rdb_path`` (the server's ``dir``/``dbfilename``) for a
  *stopped* server; refuses when a server answering on the configured address uses that very file (it
  would overwrite it on shutdown), and refuses an existing file unless forced.

The password goes to redis-cli in ``REDISCLI_AUTH``, never in argv; it, the host, socket and user name
are refused when they hold a line break or NUL (:mod:`safehold.syntax`). Note: with diskless replication
(the default) the server waits ``repl-diskless-sync-delay`` (5 s by default) before it sends the RDB.

Modules: :mod:`.options` (settings, restore options), :mod:`.client` (connection settings, clients),
:mod:`.source` (the contract, the backup), :mod:`.restore` (plan and apply), :mod:`.verify` (drills).
"""

from safehold.sources.redis.options import RedisOptions
from safehold.sources.redis.source import RDBStream, RedisSource

__all__ = ["RDBStream", "RedisOptions", "RedisSource"]
