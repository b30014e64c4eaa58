"""The audit log: one JSON record per operation, kept locally (hash-chained) and in the repository.

A record says when (``time``, ``duration``), who (``user``, ``host``), what (``command``, ``args`` with
secrets masked), how it ended (``result``: ok, partial, failed or interrupted; ``exit_code``, ``error``)
and which snapshots it wrote, and which notifications failed.

* **Local** (:func:`append_local`): one line per record in an append-only file (default
  ``/var/log/safehold/audit.jsonl`` for root, ``$XDG_STATE_HOME/safehold/audit.jsonl`` otherwise;
  ``SAFEHOLD_AUDIT_LOG`` overrides), mode 0600, written under an exclusive ``flock`` with one ``write`` and
  an fsync. Each record carries ``prev``, the SHA-256 of the line before it, so editing or removing a
  line in the middle is detected by :func:`verify_local` (cutting off the newest lines is not: compare
  with the repository's copy).
* **Repository** (:func:`append_repository`): the same record, encrypted and authenticated like every
  repository file, as an immutable ``audit/<sha256>`` file, so the history survives the host. Commands
  that only read (listing, showing, checking settings) write only the local record.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safehold.backends.base import FileType
from safehold.engine.format.repository import Repository
from safehold.errors import IntegrityError, SafeholdError

AUDIT_ENV = "SAFEHOLD_AUDIT_LOG"
JOB_ENV = "SAFEHOLD_JOB"
GENESIS = "0" * 64
#: Options whose value is masked in the recorded arguments (it may be or hold a secret).
_SECRET_OPTIONS = ("--password-command",)
_SECRETISH = re.compile(r"(password|passphrase|secret|token|api_key|apikey|key)", re.I)
_MASK = "***"
#: How far from the end of the log the last line is looked for.
_TAIL = 1 << 20


def _user() -> str:
    """Who ran it: the login name, with the sudo user when run through sudo."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.geteuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo from {sudo})" if sudo and sudo != name else name


@dataclass
class Record:
    command: str
    args: list[str]
    result: str
    exit_code: int
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    duration: float = 0.0
    user: str = field(default_factory=_user)
    host: str = field(default_factory=socket.gethostname)
    error: str | None = None
    snapshot_ids: list[str] = field(default_factory=list)
    profile: str | None = None
    notifications_failed: list[str] = field(default_factory=list)
    #: the scheduled job that ran it (SAFEHOLD_JOB, set by the units 'schedule install' writes)
    job: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def masked_args(args: list[str], redact: Any = None) -> list[str]:
    """``args`` with secret values masked: the value of ``--password-command``, ``KEY=VALUE`` settings
    whose key looks secret (``--set retell.api_key=...``), and whatever ``redact`` (a callable) masks.
    What follows a ``--`` is another program's command line (``guard -- COMMAND``) and is masked by
    :func:`masked_command`."""
    if "--" in args:
        cut = args.index("--")
        return [*masked_args(args[:cut], redact), "--", *masked_command(args[cut + 1 :], redact)]
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(_MASK)
            hide_next = False
            continue
        opt, eq, _ = arg.partition("=")
        if opt in _SECRET_OPTIONS:
            if eq:
                out.append(f"{opt}={_MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        key, eq, _ = arg.partition("=")
        if eq and not key.startswith("-") and _SECRETISH.search(key):
            out.append(f"{key}={_MASK}")
            continue
        out.append(redact(arg) if redact else arg)
    return out


#: An option or variable name that says its value is a secret (``--token``, ``DB_PASSWORD``, ``--api-key``).
_SECRET_NAME = re.compile(r"(pass|secret|token|key|auth|credential|cookie|session|signature)", re.I)
#: ``scheme://user:password@host``: the password.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@/\s]+@", re.I)
#: A header line whose value is a credential (``Authorization: Bearer ...``, ``X-Api-Key: ...``).
_SECRET_HEADER = re.compile(r"^((?:proxy-)?authorization|[a-z0-9-]*(?:token|key|secret|cookie))\s*:.*$", re.I)


def masked_command(argv: list[str], redact: Any = None) -> list[str]:
    """Another program's command line (what ``safehold guard`` runs) with what may be a secret masked.

    safehold cannot know which arguments of an arbitrary program are secret, so it masks by shape: the
    value of an option whose name looks secret (``--token X``, ``--db-password=X``, ``-p X`` is not one,
    ``-pX`` is: MySQL's client reads a password that way), ``NAME=VALUE`` where NAME looks secret, the
    password of a URL (``https://user:***@host``), credential headers (``Authorization: ***``), and
    whatever ``redact`` masks (the secrets safehold itself knows). A secret passed any other way (a bare
    positional argument) cannot be told apart: pass it through the environment or a file instead.
    """
    out: list[str] = []
    hide_next = False
    for i, arg in enumerate(argv):
        if hide_next:
            out.append(_MASK)
            hide_next = False
            continue
        if i > 0 and re.fullmatch(r"-p\S+", arg):  # mysql -pPASSWORD, or -passin X (openssl)
            out.append(f"-p{_MASK}")
            hide_next = bool(_SECRET_NAME.search(arg)) and "=" not in arg
            continue
        name, eq, _value = arg.partition("=")
        if i > 0 and arg.startswith("-") and _SECRET_NAME.search(name):
            if eq:
                out.append(f"{name}={_MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        if eq and not name.startswith("-") and _SECRET_NAME.search(name):
            out.append(f"{name}={_MASK}")
            continue
        masked = _SECRET_HEADER.sub(lambda m: f"{m.group(1)}: {_MASK}", arg)
        masked = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{_MASK}@", masked)
        out.append(redact(masked) if redact else masked)
    return out


def default_path() -> Path:
    explicit = os.environ.get(AUDIT_ENV)
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/log/safehold/audit.jsonl")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "safehold" / "audit.jsonl"


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL)
    data = os.pread(fd, size - start, start).rstrip(b"\n")
    return data.rsplit(b"\n", 1)[-1] if data else None


def append_local(record: Record, path: Path | None = None) -> Path:
    """Append ``record`` to the local log (created 0600 with its folder 0700); returns the path. Raises
    SafeholdError when it cannot be written."""
    path = path or default_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SafeholdError(
            f"cannot open the audit log {path}: {exc.strerror}",
            hint=f"Set {AUDIT_ENV} to a writable file, or fix the folder's permissions.",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        data = {**record.as_dict(), "prev": _line_hash(last) if last else GENESIS}
        line = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n"
        os.write(fd, line)
        os.fsync(fd)
    except OSError as exc:
        raise SafeholdError(f"cannot write the audit log {path}: {exc.strerror}") from None
    finally:
        os.close(fd)  # also releases the flock
    return path


def read_local(path: Path | None = None) -> list[dict[str, Any]]:
    """The local records, oldest first; [] when there is no log. Lines that are not JSON are skipped
    (:func:`verify_local` reports them)."""
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SafeholdError(f"cannot read the audit log {path}: {exc.strerror}") from None
    out = []
    for line in raw.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def verify_local(path: Path | None = None) -> list[str]:
    """Problems of the local log's hash chain: a line changed, removed or inserted shows up as the next
    line's ``prev`` not matching. [] when the chain is intact (or there is no log)."""
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    problems = []
    expected = GENESIS
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            prev = json.loads(line).get("prev")
        except (ValueError, AttributeError):
            problems.append(f"line {number} is not a JSON record")
            prev = None
        if prev != expected:
            problems.append(f"line {number}: the line before it was changed, removed or inserted")
        expected = _line_hash(line)
    return problems


def append_repository(repo: Repository, record: Record) -> str:
    """Store ``record`` encrypted in the repository as ``audit/<id>``; returns the id."""
    data = json.dumps(record.as_dict(), sort_keys=True, ensure_ascii=False, default=str).encode()
    return repo.save_file(FileType.AUDIT, data)


def read_repository(repo: Repository, errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Every record stored in the repository, oldest first. A damaged file is reported into ``errors``
    (or raised without it)."""
    out = []
    for info in repo.backend.list(FileType.AUDIT):
        try:
            item = json.loads(repo.load_file(FileType.AUDIT, info.name))
        except (IntegrityError, ValueError) as exc:
            if errors is None:
                raise
            errors.append(f"audit/{info.name[:16]}: {getattr(exc, 'message', exc)}")
            continue
        if isinstance(item, dict):
            out.append(item)
    return sorted(out, key=lambda r: str(r.get("time", "")))


def since(records: list[dict[str, Any]], after: datetime | None) -> Iterator[dict[str, Any]]:
    for r in records:
        try:
            when = datetime.fromisoformat(str(r.get("time")))
        except ValueError:
            continue
        if after is None or when >= after:
            yield r
