"""``bootstrap/``: what a bare host needs to install safehold and read the repository, kept in the repository.

When the server is gone, so is its safehold. The repository root therefore holds a ``bootstrap/`` folder
(not encrypted: code only, no data, no secret) with the wheels of the running safehold and of every
library it uses (:mod:`safehold.operations.backup.wheels`), for this platform and Python version, and:

* ``requirements.txt`` — every wheel pinned with its sha256, for ``pip install --require-hashes``;
* ``SHA256SUMS`` — every file's sha256, for ``sha256sum -c SHA256SUMS``;
* ``README.md`` — the three commands that install safehold on a new host with no network;
* ``bootstrap.json`` — what is there (versions, Python, platform); written last, so a folder without it is
  incomplete and written again.

``init`` writes it and ``backup`` refreshes it when the installed versions differ from the recorded ones
(one small read per backup otherwise). Neither ever fails because of it: a failure is a warning. The folder
lies outside the repository format (its own :attr:`FileType.BOOTSTRAP`), so ``check``, ``prune`` and the
listings of repository files never take it for one of theirs; ``check`` reports on it separately.

``SAFEHOLD_BOOTSTRAP=0`` switches it off (a repository on a small quota; the test suite, which makes
hundreds of repositories).

Its contents are as trustworthy as the storage: anyone who can write the repository can replace a wheel
and its hash together. ``init`` and every refresh print the sha256 of ``SHA256SUMS``; keep it with the
passphrase, and compare before installing on a new host.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safehold import __version__
from safehold.backends.base import Backend, FileType, Handle
from safehold.errors import NotFoundError, SafeholdError

ENV = "SAFEHOLD_BOOTSTRAP"
MANIFEST = "bootstrap.json"
SUMS = "SHA256SUMS"
REQUIREMENTS = "requirements.txt"
README = "README.md"
FORMAT = 1
#: Import paths whose closure is remembered (see _closure_names).
_REMEMBERED = 4


def enabled() -> bool:
    """False when ``SAFEHOLD_BOOTSTRAP`` is 0/false/no/off."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class BootstrapResult:
    """What :func:`ensure_bootstrap` did: ``written``, ``current``, ``disabled`` or ``failed``."""

    action: str
    message: str
    files: int = 0
    bytes: int = 0
    sums_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.action != "failed"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fetch_command(location: str) -> str:
    """The shell command that copies a repository's ``bootstrap/`` into the current folder."""
    loc = location.rstrip("/")
    if loc.startswith("s3://"):
        return f"aws s3 cp --recursive {loc}/bootstrap bootstrap"
    if loc.startswith("gs://"):
        return f"gcloud storage cp --recursive {loc}/bootstrap ."
    if loc.startswith("sftp://"):
        rest = loc[len("sftp://") :]
        host, _, path = rest.partition("/")
        path = path[2:] if path.startswith("~/") else "/" + path
        port = ""
        if ":" in host.rsplit("@", 1)[-1]:
            host, _, p = host.rpartition(":")
            port = f"-P {p} "
        return f"sftp {port}{host} <<< 'get -r {path}/bootstrap'"
    if loc.startswith("file://"):
        loc = loc[len("file://") :]
    return f"cp -r {loc}/bootstrap ."


def install_commands(location: str) -> list[str]:
    """The exact commands that install safehold on a new host from the repository at ``location``."""
    return [
        fetch_command(location),
        f"(cd bootstrap && sha256sum -c {SUMS})",
        "python3 -m venv /opt/safehold && /opt/safehold/bin/pip install --no-index --find-links bootstrap safehold",
        "ln -s /opt/safehold/bin/safehold /usr/local/bin/safehold",
    ]


def readme(wheels: list[str]) -> str:
    return "\n".join(
        [
            f"# safehold {__version__}: install it on a new host from here",
            "",
            f"This folder holds the wheels of safehold {__version__} and of every library it uses, for",
            f"Python {python_version()} ({python_tag()}) on {platform.system().lower()} {platform.machine()}:",
            "everything needed to read this repository, with no network. It holds code only: no data, no",
            "secret, and it is not encrypted.",
            "",
            "On the new host, with this folder copied next to you as `bootstrap/` (`cp -r`, `aws s3 cp",
            "--recursive`, `sftp` with `get -r`):",
            "",
            "```sh",
            f"(cd bootstrap && sha256sum -c {SUMS})",
            "python3 -m venv /opt/safehold && /opt/safehold/bin/pip install --no-index --find-links bootstrap safehold",
            "ln -s /opt/safehold/bin/safehold /usr/local/bin/safehold",
            "```",
            "",
            f"`python3` must be Python {python_version()}: the compiled wheels are for that version (on Debian",
            f"and Ubuntu: `apt-get install python{python_version()}-venv`). To install with pip checking every",
            f"hash: `/opt/safehold/bin/pip install --no-index --find-links bootstrap --require-hashes -r "
            f"bootstrap/{REQUIREMENTS}`.",
            "",
            "Then point safehold at the repository and its passphrase (`export SAFEHOLD_REPOSITORY=...",
            "SAFEHOLD_PASSWORD_FILE=...`) and follow the snapshot's guide: `safehold dump latest /RESTORE.md`.",
            "",
            f"Wheels ({len(wheels)}):",
            "",
            *[f"- {w}" for w in wheels],
            "",
        ]
    )


def _manifest(wheels: list[str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "safehold": __version__,
        "python": python_version(),
        "platform": f"{platform.system().lower()}-{platform.machine()}",
        "wheels": wheels,
    }


def read_manifest(backend: Backend) -> dict[str, Any] | None:
    """The stored ``bootstrap.json``, or None when missing or not one of ours (it is untrusted input)."""
    try:
        raw = backend.load(Handle(FileType.BOOTSTRAP, MANIFEST))
    except NotFoundError:
        return None
    if len(raw) > 1 << 20:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("wheels"), list):
        return None
    if not all(isinstance(w, str) for w in doc["wheels"]):
        return None
    return doc


def _cache() -> Path:
    from safehold.engine.backup.filescache import cache_root

    return cache_root() / "bootstrap"


def _install_stamp() -> list[Any]:
    """What the installed distributions' metadata depends on: the interpreter and, for every folder on
    the import path, its modification time (installing, upgrading or removing a distribution adds or
    removes a ``*.dist-info`` folder there)."""
    stamp: list[Any] = [sys.version, __version__]
    for entry in sys.path:
        try:
            stamp.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamp.append([entry, None])
    return stamp


def _closure_names(closure: Callable[[], Any]) -> list[str]:
    """The wheel names of safehold's closure, remembered in the cache while nothing was installed or
    removed: reading every distribution's metadata costs ~0.1 s of each backup otherwise. Remembered for
    the last few import paths (``stamp``/``names`` the newest, ``others`` before it): the first entry of
    the path is the script's folder or the working directory, so ``safehold``, ``python -m safehold`` and a
    cron job each have their own, and taking turns must not read everything again each time.
    ``closure()`` gives :func:`safehold.operations.backup.wheels.closure`'s list, its module imported only
    when the names are not remembered (it imports packaging and importlib.metadata, ~20 ms of every backup
    otherwise)."""
    stamp = _install_stamp()
    path = _cache() / "closure.json"
    known: list[dict[str, Any]] = []
    try:
        doc = json.loads(path.read_text())
        known = [{"stamp": doc["stamp"], "names": doc["names"]}, *doc.get("others", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    for entry in known:
        if not isinstance(entry, dict):
            continue
        names = entry.get("names")
        if entry.get("stamp") == stamp and isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    names = [d.filename for d in closure()]
    others = [e for e in known if isinstance(e, dict) and e.get("stamp") != stamp][: _REMEMBERED - 1]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".closure.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "names": names, "others": others}))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the time
    return names


def _wheels() -> Any:
    from safehold.operations.backup import wheels

    return wheels


class EarlyWheels:
    """The closure read and its wheels built in the background from now on, for :func:`ensure_bootstrap`
    later: ``init`` starts them before it creates the repository, whose key derivation (argon2id, one
    core) leaves the other core to them. :meth:`cancel` when they will not be used."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="safehold-early-wheels", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            wheelmod = _wheels()
            dists = wheelmod.closure()
            self._queue.put(("dists", dists))
            if self._stop.is_set():
                return
            for path in wheelmod.cached_wheels(_cache(), dists):
                self._queue.put(("path", path))
                if self._stop.is_set():
                    return  # closing the generator cancels the builds not started
            self._queue.put(("end", None))
        except BaseException as exc:
            self._queue.put(("error", exc))

    def _next(self) -> tuple[str, Any]:
        kind, value = self._queue.get()
        if kind == "error":
            self._queue.put((kind, value))  # and again to whoever asks next
            raise value
        return kind, value

    def dists(self) -> list[Any]:
        """The closure (:func:`safehold.operations.backup.wheels.closure`); call once, first."""
        return list(self._next()[1])

    def paths(self) -> Iterator[Path]:
        """The wheels, each as soon as it is in the cache; after :meth:`dists`."""
        while (item := self._next())[0] == "path":
            yield item[1]

    def cancel(self) -> None:
        self._stop.set()


def ensure_bootstrap(
    backend: Backend,
    *,
    build: Callable[[Path], Iterable[Path]] | None = None,
    early: EarlyWheels | None = None,
) -> BootstrapResult:
    """Write ``bootstrap/`` when it is missing, incomplete or for other versions (with the wheels of
    ``early`` when given). Never raises for a failure (no wheel can be built, the storage refuses): the
    result says what happened."""
    if not enabled():
        if early is not None:
            early.cancel()
        return BootstrapResult("disabled", f"bootstrap/ not written ({ENV}=0)")
    found: list[Any] = []

    def closure() -> Any:  # read once per call (~0.1 s): the names, the wheels and the pins need it
        if not found:
            found.append(early.dists() if early is not None else _wheels().closure())
        return found[0]

    try:
        names = _closure_names(closure)
        current = read_manifest(backend)
        if current is not None and _manifest(names) == {k: current.get(k) for k in _manifest(names)}:
            stored = {fi.name for fi in backend.list(FileType.BOOTSTRAP)}
            if stored >= {*names, README, REQUIREMENTS, SUMS, MANIFEST}:
                return BootstrapResult("current", "bootstrap/ is up to date")
        dists = closure()  # what is written comes from the installation, not from the remembered names
        names = [d.filename for d in dists]
        if early is not None:
            paths: Iterable[Path] = early.paths()
        else:
            paths = build(_cache()) if build else _wheels().cached_wheels(_cache(), dists)
        return _write(backend, paths, names, dists)
    except SafeholdError as exc:
        return BootstrapResult("failed", f"bootstrap/ not written: {exc.message}", warnings=[exc.hint])
    except OSError as exc:
        return BootstrapResult("failed", f"bootstrap/ not written: {exc}")
    finally:
        if early is not None:
            early.cancel()


def _write(backend: Backend, paths: Iterable[Path], names: list[str], dists: list[Any]) -> BootstrapResult:
    """Store the wheels as ``paths`` gives them (the next ones are being built meanwhile), then the files
    that list them, ``bootstrap.json`` last."""
    sums: list[str] = []
    pins: dict[str, str] = {}
    total = 0
    by_name = {d.filename: d for d in dists}
    wheels = 0
    for path in paths:
        wheels += 1
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        backend.save(Handle(FileType.BOOTSTRAP, path.name), data)
        sums.append(f"{digest}  {path.name}")
        dist = by_name[path.name]
        pins[path.name] = f"{dist.name}=={dist.version} --hash=sha256:{digest}"
        total += len(data)
    pinned = "\n".join(pins[d.filename] for d in dists if d.filename in pins) + "\n"
    for name, text in ((README, readme(names)), (REQUIREMENTS, pinned)):
        raw = text.encode()
        backend.save(Handle(FileType.BOOTSTRAP, name), raw)
        sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}")
        total += len(raw)
    sums_raw = ("\n".join(sorted(sums, key=lambda s: s.split("  ", 1)[1])) + "\n").encode()
    backend.save(Handle(FileType.BOOTSTRAP, SUMS), sums_raw)
    doc = _manifest(names) | {"written": datetime.now(UTC).isoformat(timespec="seconds")}
    backend.save(Handle(FileType.BOOTSTRAP, MANIFEST), (json.dumps(doc, indent=2) + "\n").encode())
    keep = {*names, README, REQUIREMENTS, SUMS, MANIFEST}
    for fi in list(backend.list(FileType.BOOTSTRAP)):
        if fi.name not in keep:
            backend.remove(Handle(FileType.BOOTSTRAP, fi.name))
    sums_sha = hashlib.sha256(sums_raw).hexdigest()
    return BootstrapResult(
        "written",
        f"wrote bootstrap/ for safehold {__version__} ({wheels} wheels, {total >> 20} MiB); "
        f"sha256 of {SUMS}: {sums_sha}",
        files=wheels + 4,
        bytes=total,
        sums_sha256=sums_sha,
    )


def verify_bootstrap(backend: Backend, *, read: bool) -> tuple[list[str], list[str]]:
    """(notes, problems) about ``bootstrap/`` for ``check``: present, complete, and with ``read`` every
    file's sha256 against ``SHA256SUMS``. Nothing here is repository damage: the data is unaffected."""
    stored = {fi.name: fi.size for fi in backend.list(FileType.BOOTSTRAP)}
    if not stored:
        return [], [
            "bootstrap/ is missing: a new host cannot install safehold from this repository "
            "(the next backup writes it)"
        ]
    doc = read_manifest(backend)
    if doc is None or SUMS not in stored:
        return [], [
            "bootstrap/ is incomplete (no bootstrap.json or SHA256SUMS; the next backup writes it again)"
        ]
    problems = [f"bootstrap/{w} is missing" for w in doc["wheels"] if w not in stored]
    sums_raw = backend.load(Handle(FileType.BOOTSTRAP, SUMS))
    if read:
        for line in sums_raw.decode(errors="replace").splitlines():
            digest, _, name = line.partition("  ")
            if name not in stored:
                problems.append(f"bootstrap/{name} is missing")
                continue
            if hashlib.sha256(backend.load(Handle(FileType.BOOTSTRAP, name))).hexdigest() != digest:
                problems.append(f"bootstrap/{name} does not match its sha256 in {SUMS}")
    notes = [
        f"bootstrap/ holds safehold {doc.get('safehold')} for Python {doc.get('python')} on "
        f"{doc.get('platform')} ({len(doc['wheels'])} wheels"
        + ("; every file matches SHA256SUMS" if read and not problems else "")
        + f"); sha256 of {SUMS}: {hashlib.sha256(sums_raw).hexdigest()}"
    ]
    return notes, problems
