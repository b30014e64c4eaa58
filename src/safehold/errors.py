"""The one exception tree of safehold and its exit-code table.

Every error a user can see is a :class:`SafeholdError`: it carries a one-line ``message``, a ``hint``
saying what to do about it, and an ``exit_code`` from :data:`EXIT_CODES`. The CLI maps exceptions to
output and exit codes in one place (``safehold.cli.main``); nothing else prints or exits.

::

    SafeholdError                      exit 1 unless stated
    ├── UsageError                     2   bad flags or arguments
    ├── ConfigError                    2   malformed or invalid configuration
    │   └── UnsafeValue                2   a value that would change the syntax it is written into
    ├── RepositoryError
    │   ├── RepositoryNotFound         10  nothing at the repository URL
    │   ├── RepositoryExists               init over an existing repository
    │   ├── RepositoryLocked           11  a conflicting lock is held
    │   ├── LockLost                   13  our lock was removed, replaced or not refreshed; aborted
    │   ├── WrongPassword              12  no key file opens with the passphrase
    │   ├── UnsupportedRepository          format version or feature flag we do not know
    │   └── IntegrityError                 bytes that fail authentication or hashing
    ├── BackendError                       storage failed (I/O, network, permissions)
    │   ├── NotFoundError                  a file is missing from storage
    │   └── ColdStorageError               data in an archive class that needs a thaw first
    ├── SourceError                        a component's source failed (dump tool, API, ...)
    │   └── RestoreRefused                 a restore would replace existing data without --force
    ├── NotFound                           a snapshot, path or key the user named does not exist
    ├── PartialResult                  3   the operation finished but some items could not be read
    ├── HealthCheckFailed              4   a health check failed (after 'restore all': all was restored)
    ├── ObjectiveBreached              5   'status': an RPO/RTO objective is not met, or the last check failed
    ├── PreflightFailed                6   a backup would not fit: stopped before writing anything
    └── Interrupted                    130 SIGINT / SIGTERM
"""

from __future__ import annotations

import re
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_HEALTH = 4
EXIT_OBJECTIVE = 5
EXIT_PREFLIGHT = 6
EXIT_NO_REPOSITORY = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_LOCK_LOST = 13
EXIT_INTERRUPTED = 130

#: The documented exit codes; the README table is checked against this by a test.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "failure (the message says what failed)",
    EXIT_USAGE: "usage or configuration error",
    EXIT_PARTIAL: "partial: the snapshot was written but some items could not be read (repair: some data is lost)",
    EXIT_HEALTH: "a health check failed (after 'restore all': everything was restored, the check names what "
    "does not work yet)",
    EXIT_OBJECTIVE: "an objective is breached: a snapshot older than the RPO, a drill missing, failed, "
    "overdue or slower than the RTO, or a failed last check ('status', 'drill')",
    EXIT_PREFLIGHT: "the backup would not fit: the repository, cache or temporary folder lacks the space or "
    "inodes it needs (the message has the figures); stopped before anything was written",
    EXIT_NO_REPOSITORY: "no repository at the given location",
    EXIT_LOCKED: "the repository is locked by another operation",
    EXIT_WRONG_PASSWORD: "wrong passphrase (no key opens with it)",
    EXIT_LOCK_LOST: "the operation's lock was removed or could not be refreshed; nothing was committed",
    EXIT_INTERRUPTED: "interrupted (SIGINT/SIGTERM)",
}


class SafeholdError(Exception):
    """Base of every user-facing error: a message, a hint and an exit code."""

    exit_code: ClassVar[int] = EXIT_FAILURE
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(SafeholdError):
    exit_code = EXIT_USAGE
    default_hint = "Run the command with --help to see its usage."


class ConfigError(SafeholdError):
    exit_code = EXIT_USAGE
    default_hint = (
        "Fix the setting the message names; 'safehold config check' lists every problem of the "
        "configuration file with its location."
    )


class UnsafeValue(ConfigError):
    """A value (a secret, a setting, a stored name) holds characters that the syntax it goes into cannot
    carry: a line break in a password bound for an option file, a NUL in an environment variable. The
    message names where the value comes from, never the value (see :mod:`safehold.syntax`)."""

    default_hint = (
        "Fix the value where the message says it comes from; safehold refuses it rather than let it "
        "add settings of its own."
    )


class RepositoryError(SafeholdError):
    pass


class RepositoryNotFound(RepositoryError):
    exit_code = EXIT_NO_REPOSITORY
    default_hint = "Check --repo / SAFEHOLD_REPOSITORY, or create one with 'safehold init'."


class RepositoryExists(RepositoryError):
    default_hint = "Choose another location, or use the existing repository."


class RepositoryLocked(RepositoryError):
    exit_code = EXIT_LOCKED
    default_hint = (
        "Wait for the other operation to finish. If it died, 'safehold unlock' removes stale locks."
    )

    def __init__(
        self, message: str, hint: str | None = None, *, held: float | None = None, waited: float = 0.0
    ) -> None:
        super().__init__(message, hint)
        #: seconds since the conflicting lock was taken (None: unknown), and how long we waited for it
        self.held = held
        self.waited = waited


class LockLost(RepositoryError):
    exit_code = EXIT_LOCK_LOST
    default_hint = (
        "Nothing was committed. Find out who removed the lock ('safehold cat locks'; never run "
        "'unlock --remove-all' while operations run), then run the operation again."
    )


class WrongPassword(RepositoryError):
    exit_code = EXIT_WRONG_PASSWORD
    default_hint = (
        "The passphrase is taken from the first of: --password-file / SAFEHOLD_PASSWORD_FILE, "
        "--password-command / SAFEHOLD_PASSWORD_COMMAND, SAFEHOLD_PASSWORD, the configuration's "
        "repository.password, a prompt. Check that one; any passphrase added with 'key add' opens it."
    )


class UnsupportedRepository(RepositoryError):
    default_hint = "Upgrade safehold: this repository uses a format or feature this version does not know."


class IntegrityError(RepositoryError):
    default_hint = "Run 'safehold check --read-data' to find every damaged file in the repository."


class BackendError(SafeholdError):
    default_hint = "Check that the storage is reachable, writable and has free space."


class NotFoundError(BackendError):
    default_hint = "The repository may be damaged; run 'safehold check'."


class ColdStorageError(BackendError):
    default_hint = (
        "Restore the objects from the archive storage class first (for S3: "
        "'aws s3api restore-object' on each data pack, or a Batch Operations restore job), "
        "wait until they are readable, then run the command again."
    )


class SourceError(SafeholdError):
    default_hint = "See the backup log for the source's own error output."


class RestoreRefused(SourceError):
    """A restore that would replace existing data (a non-empty database, an existing file, keys that
    exist) and was not given ``--force``. The message names what exists ("database app on
    127.0.0.1:3306 is not empty"); restore plans show it as "refused: MESSAGE; --force replaces it"."""

    default_hint = "Pass --force to replace it, or restore to another place."


class NotFound(SafeholdError):
    default_hint = "Run 'safehold snapshots' or 'safehold ls' to see what exists."


class PartialResult(SafeholdError):
    exit_code = EXIT_PARTIAL
    default_hint = "The items listed could not be read; the rest completed."


class HealthCheckFailed(SafeholdError):
    """Configured health checks failed: the application does not work as checked. After ``restore all``
    this means everything was restored; what remains is a service to start or a setting to fix."""

    exit_code = EXIT_HEALTH
    default_hint = (
        "Each failed check's line above says what it saw; fix that and run 'safehold verify-system'."
    )


class ObjectiveBreached(SafeholdError):
    """A recovery objective is not met (``status``), or a drill did not prove the RTO (``drill``)."""

    exit_code = EXIT_OBJECTIVE
    default_hint = "The lines marked BREACHED say what is not met."


class PreflightFailed(SafeholdError):
    """A backup stopped by its preflight: a folder it writes to lacks the space or inodes it needs."""

    exit_code = EXIT_PREFLIGHT
    default_hint = (
        "Free space there (e.g. 'safehold forget --prune' in the repository), or move the folder; "
        "'safehold doctor' shows every figure."
    )


class Interrupted(SafeholdError):
    exit_code = EXIT_INTERRUPTED
    default_hint = "Run the command again; completed work is kept and reused."


_SUGGESTED = re.compile(r"'safehold ([^']+)'")
_SENTENCE = re.compile(r"(?<=[.;:])\s+")


def without_self_reference(hint: str, running: list[str]) -> str:
    """``hint`` without the sentences that tell the user to run the command that is running.

    A hint names commands as ``'safehold WORDS'``; a suggestion whose words all appear on the command line
    being run (``running``: its arguments) is the command that just failed (``config check`` failing must
    not say "Run 'safehold config check'"), so its sentence goes. A suggestion of a longer command
    (``'safehold check --read-data'`` while ``check`` runs) stays. Hints are written so that this rarely
    applies; it is the guarantee, applied where errors are printed.
    """
    words = set(running)
    keep = [
        s
        for s in _SENTENCE.split(hint)
        if not any(set(m.split()) <= words for m in _SUGGESTED.findall(s) if m.split())
    ]
    return " ".join(keep)
