"""The ``safehold`` program's first step: derive the repository's key before importing the rest.

Argon2id with RFC 9106's parameters holds 64 MiB while it runs. Derived where a command unlocks the
repository, after the CLI, the engine, numpy and pydantic are imported (~55 MiB), it sets the process's
peak memory (~127 MiB) for commands whose own work needs less: forget and prune, and at the benchmark's
sizes backup, restore and check too (measured on a no-change backup at scale 0.25: peak 127.6 -> 90.9
MiB, wall time +3% [-1%..+14%] in 7 paired runs: the derivation no longer overlaps the numpy import, but
with four lanes it keeps both cores busy anyway). snapshots too: it loads no index, so without this step
the numpy import ahead of the index (done while a key is derived in the command) was all waste (scale
0.25: wall 0.83x [0.80-0.88], CPU 0.74x, peak 113 -> 78 MiB, 9 paired runs). This module imports only the key-file code (~14 MiB
in all: neither click nor cryptography nor OpenSSL, so the KDF phase peaks at ~78 MiB) and, when such a
command will open a local repository with the passphrase from ``SAFEHOLD_PASSWORD`` and no other passphrase source, derives
the key-encryption keys first (:func:`safehold.engine.format.keys.derive_ahead`: intact key files only, bounded
parameters, cheapest first, stopping at the first that opens). The command itself then resolves the
passphrase, reads and checks the key files and unlocks as always, and finds each derived key in a cache
keyed by the passphrase, the parameters and the salt: anything it resolves differently is derived again,
so this step can only save work, never change what is opened. It fails silently for the same reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

#: Commands whose own work needs less memory than the key derivation (or not much more).
COMMANDS = frozenset({"forget", "prune", "backup", "restore", "check", "snapshots"})
#: The global options that take a value (those of ``safehold.cli.globalopts.GLOBAL_OPTIONS``, which is
#: not imported here: it imports click, ~5 MiB more under the KDF; tests/test_boot.py checks they agree).
VALUED = frozenset(
    {"-r", "--repo", "--password-file", "--password-command", "-c", "--config", "--offsite", "--lock-wait"}
)
_OTHER_SOURCES = ("--password-file", "--password-command", "-c", "--config")
_OTHER_ENV = ("SAFEHOLD_PASSWORD_FILE", "SAFEHOLD_PASSWORD_COMMAND")


def local_repository(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The local repository a :data:`COMMANDS` command of ``argv`` will unlock with ``SAFEHOLD_PASSWORD``,
    or None when that is not certain (another command, help, another passphrase source, a configuration
    file, a remote repository)."""
    if not env.get("SAFEHOLD_PASSWORD") or any(env.get(v) for v in _OTHER_ENV):
        return None
    command: str | None = None
    repo = env.get("SAFEHOLD_REPOSITORY")
    i = 0
    while i < len(argv):
        tok = argv[i]
        name, eq, value = tok.partition("=")
        if tok in ("-h", "--help") or name in _OTHER_SOURCES:
            return None
        if name in ("-r", "--repo"):
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            repo = value
        elif tok.startswith("-"):
            i += 1 if (tok in VALUED and not eq) else 0
        elif command is None:
            command = tok
        i += 1
    if command not in COMMANDS or not repo or "://" in repo:
        return None
    return repo if os.path.isdir(os.path.join(repo, "keys")) else None


def derive_ahead(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Derive the key of :func:`local_repository` ahead; how many key files were derived."""
    repo = local_repository(argv, env)
    if repo is None:
        return 0
    from safehold.engine.format import keys

    folder = os.path.join(repo, "keys")
    files: list[tuple[str, bytes]] = []
    for name in sorted(os.listdir(folder))[:64]:
        with open(os.path.join(folder, name), "rb") as f:
            files.append((name, f.read(1 << 16)))
    return keys.derive_ahead(env["SAFEHOLD_PASSWORD"], files)


def entry() -> None:
    try:
        derive_ahead(sys.argv[1:], os.environ)
    except Exception:  # only a cache: the command derives what it needs itself
        pass
    from safehold.cli.main import entry as main_entry

    main_entry()
