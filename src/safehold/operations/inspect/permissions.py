"""File permissions ``doctor`` reports: who else may read or change what safehold trusts.

safehold runs as root and takes its instructions from the configuration (it runs the programs and hooks it
names), its passphrase from a file, and writes the repository and its caches. Each of these is checked
for the one thing that matters, with the ``chmod``/``chown`` that fixes it:

* the passphrase file (the main repository's and each off-site one's, when a file holds it): no access for
  group or others, owned by the user running safehold;
* the configuration file: not writable by group or others and owned by that user (anyone who can change it
  runs programs as root), not readable by them either (it maps the servers, paths and secret locations);
* a local repository folder and the cache folder: not readable or enterable by group or others (0700).
  The repository is encrypted, but a readable one can be copied away and attacked offline, and the files
  cache names every backed-up file.

Only these generic checks live here; checks of one kind of source (the database user of a component...)
belong to that kind.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from safehold.config.schema import Config
from safehold.secrets import SecretRef

#: (subject, check, ok, message, hint) of one finding; the doctor turns these into its Findings.
Report = Callable[[str, str, bool, str, str | None], None]


@dataclass(frozen=True)
class Targets:
    """What to check: the configuration file in use, passphrase files named outside the configuration
    (``--password-file`` / ``SAFEHOLD_PASSWORD_FILE``) and the cache folder."""

    config_file: Path | None
    password_files: list[Path] = field(default_factory=list)
    cache_dir: Path | None = None


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def _owner_problem(path: Path, st: os.stat_result) -> str | None:
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by the user running safehold (uid {os.geteuid()})"
    return None


def _check_secret_file(report: Report, what: str, path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        report("permissions", what, False, f"{what} {path}: {exc.strerror}", None)
        return
    owner = _owner_problem(path, st)
    if st.st_mode & 0o077:
        report(
            "permissions", what, False,
            f"{what} {path} is readable by others (mode {_mode(st)}): whoever reads it can decrypt every "
            "snapshot",
            f"chmod 600 {path}",
        )  # fmt: skip
    elif owner:
        report("permissions", what, False, owner, f"chown {os.geteuid()} {path}")
    else:
        report("permissions", what, True, f"{what} {path} is private (mode {_mode(st)})", None)


def _check_config(report: Report, path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        report("permissions", "config", False, f"configuration {path}: {exc.strerror}", None)
        return
    owner = _owner_problem(path, st)
    if st.st_mode & 0o022:
        report(
            "permissions", "config", False,
            f"configuration {path} is writable by others (mode {_mode(st)}): whoever changes it runs "
            "programs as the user running safehold",
            f"chmod 600 {path}",
        )  # fmt: skip
    elif owner:
        report(
            "permissions",
            "config",
            False,
            owner + " (whoever owns it can change it)",
            f"chown {os.geteuid()} {path}",
        )
    elif st.st_mode & 0o044:
        report(
            "permissions", "config", False,
            f"configuration {path} is readable by others (mode {_mode(st)}): it names the servers, paths "
            "and where the secrets are",
            f"chmod 600 {path}",
        )  # fmt: skip
    else:
        report("permissions", "config", True, f"configuration {path} is private (mode {_mode(st)})", None)


def _check_folder(report: Report, what: str, path: Path, why: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return  # not made yet: safehold creates it 0700
    except OSError as exc:
        report("permissions", what, False, f"{what} {path}: {exc.strerror}", None)
        return
    if st.st_mode & 0o077:
        report(
            "permissions", what, False,
            f"{what} {path} can be read or entered by others (mode {_mode(st)}): {why}",
            f"chmod 700 {path}",
        )  # fmt: skip
    else:
        report("permissions", what, True, f"{what} {path} is private (mode {_mode(st)})", None)


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    return None if "://" in url else Path(url)


def _password_file(ref: SecretRef | None) -> Path | None:
    """The file a passphrase reference reads whole (a dotenv key's file is the application's own)."""
    if ref is None or ref.file is None or ref.key is not None:
        return None
    return Path(ref.file)


def check_permissions(config: Config, targets: Targets, report: Report) -> None:
    """Report the permission findings for ``config`` and ``targets`` (see the module docstring)."""
    files = list(targets.password_files)
    for ref in [config.repository.password, *(site.password for site in config.offsite.values())]:
        path = _password_file(ref)
        if path is not None and path not in files:
            files.append(path)
    for path in files:
        _check_secret_file(report, "passphrase file", path)
    if targets.config_file is not None:
        _check_config(report, targets.config_file)
    why = "it can be copied away and its passphrase attacked offline"
    for url in [config.repository.url, *(site.url for site in config.offsite.values())]:
        folder = _local_path(url)
        if folder is not None:
            _check_folder(report, "repository folder", folder, why)
    if targets.cache_dir is not None:
        _check_folder(report, "cache folder", targets.cache_dir, "the files cache names every backed-up file")
