"""What every command shares: global options, passphrase lookup, opening the repository, output."""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from safehold.backends.base import Backend
from safehold.engine.format.repository import Repository
from safehold.engine.progress import NullProgress, Progress
from safehold.errors import ConfigError, RepositoryNotFound, UsageError
from safehold.secretvalue import Reference, SecretSource, resolve_passphrase

if TYPE_CHECKING:
    from safehold.config.schema import Config

#: Set once a command printed its JSON result, so an error after it does not print a second document.
EMITTED: list[bool] = []
#: The App of the command running (main() reads it after the command, for notifications and the audit).
CURRENT: list[App] = []


@dataclass
class Outcome:
    """What a command reports about its result beyond the exit code, for notifications and the audit log:
    the profile, the snapshots it wrote, whether one is partial, and what failed (one line per item)."""

    profile: str | None = None
    snapshot_ids: list[str] = field(default_factory=list)
    partial: bool = False
    details: list[str] = field(default_factory=list)
    #: the exit code of the operation itself when it differs from the process's (guard: the backup's)
    operation_code: int | None = None
    #: more fields for the audit record (guard: the command run and its exit code)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class App:
    repo_url: str | None = None
    #: a reference that wins over every other source (e.g. SAFEHOLD_OTHER_PASSWORD for copy's other side)
    password_from: SecretSource | None = None
    password_file: str | None = None
    password_command: str | None = None
    json: bool = False
    debug: bool = False
    quiet: bool = False
    config_path: str | None = None
    offsite: str | None = None
    lock_wait: str | None = None
    _backends: list[Backend] = field(default_factory=list)
    _config: Config | None = None
    _config_loaded: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    #: The last lines the command printed (results, warnings, progress notes): the log tail of messages.
    journal: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    #: Secret values this process resolved (the passphrase), masked in everything sent out.
    secrets: list[str] = field(default_factory=list)
    #: The operation being observed (notifications), set when a notified command starts.
    operation: Any = None
    #: The top-level command's name, and whether its callback ran (not only --help or a usage error).
    command_name: str | None = None
    ran: bool = False
    #: Repositories opened with their key (the audit record goes into the first).
    repos: list[Repository] = field(default_factory=list)
    #: main() closes the backends itself, after the audit record is written.
    close_later: bool = False
    #: The status a command computed (``status``), reused after it for the textfile and breach alerts.
    measured: Any = None
    #: Notifications the command sent while it ran (disk.low), for its audit record.
    sent: list[Any] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    # ---- configuration ---------------------------------------------------------------------------
    def config(self, *, required: bool = False) -> Config | None:
        """The configuration (``--config``, ``SAFEHOLD_CONFIG`` or a default location), loaded once.

        Without ``required``, a missing file is fine (None); an invalid one is always an error.
        """
        if not self._config_loaded:
            from safehold.config.loader import find_config, load_config

            self._config_loaded = True
            explicit = self.config_path or os.environ.get("SAFEHOLD_CONFIG")
            try:
                path = find_config(Path(explicit) if explicit else None)
            except ConfigError:
                if required or explicit:
                    raise
                path = None
            self._config = load_config(path) if path is not None else None
        if required and self._config is None:
            raise ConfigError(
                "no configuration file found", hint="Pass --config FILE or set SAFEHOLD_CONFIG."
            )
        return self._config

    # ---- repository ------------------------------------------------------------------------------
    def backend(self, url: str | None = None) -> Backend:
        from safehold.backends.registry import open_backend
        from safehold.cli.backend_options import backend_options

        url = url or self.repo_url
        options: dict[str, Any] = {}
        if not url and self.offsite:
            site = self._offsite_settings()
            url, options = site.url, dict(site.options)
        if not url:
            cfg = self.config()
            if cfg is not None:
                url, options = cfg.repository.url, dict(cfg.repository.options)
        if not url:
            raise RepositoryNotFound(
                "no repository given",
                hint="Pass --repo URL, set SAFEHOLD_REPOSITORY, or name it in the configuration.",
            )
        b = open_backend(url, **(options | backend_options(url)))
        self._backends.append(b)
        return b

    def open_repo(self, url: str | None = None) -> Repository:
        backend = self.backend(url)
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.properties.location}")
        repo = Repository.open(backend, self.get_password())
        repo.lock_wait = self.lock_wait_seconds()
        repo.report = lambda text: self.warn(f"warning: {text}")
        self.repos.append(repo)
        return repo

    def lock_wait_seconds(self) -> float:
        """``--lock-wait`` in seconds (0 when not given)."""
        if not self.lock_wait or self.lock_wait.strip() == "0":
            return 0.0
        from safehold.config.duration import parse_duration

        try:
            return parse_duration(self.lock_wait.strip()).total_seconds()
        except ValueError as exc:
            raise UsageError(
                f"--lock-wait: {exc}", hint="Write a duration such as 30s, 10m or 1h, or 0."
            ) from None

    def close(self) -> None:
        if self.close_later:
            return
        self.close_now()

    def close_now(self) -> None:
        for b in self._backends:
            try:
                b.close()
            except Exception:
                pass

    # ---- passphrase ------------------------------------------------------------------------------
    def _offsite_settings(self) -> Any:
        cfg = self.config(required=True)
        assert cfg is not None and self.offsite is not None
        if self.offsite not in cfg.offsite:
            raise ConfigError(
                f"no off-site repository {self.offsite!r} in the configuration",
                hint=f"Defined: {', '.join(sorted(cfg.offsite)) or '(none)'}.",
            )
        return cfg.offsite[self.offsite]

    def password_ref(self, *, include_config: bool = True) -> SecretSource | None:
        """Where the passphrase comes from, the first of: ``password_from`` (another repository's own
        variable), an off-site repository's reference, ``--password-file`` / SAFEHOLD_PASSWORD_FILE,
        ``--password-command`` / SAFEHOLD_PASSWORD_COMMAND, the variable SAFEHOLD_PASSWORD, and (with
        ``include_config``) the configuration's ``repository.password``. None: ask on a terminal."""
        if self.password_from is not None:
            return self.password_from
        if self.offsite and not self.repo_url:
            site = self._offsite_settings()
            if site.password is not None:
                return cast(SecretSource, site.password)
        pw_file = self.password_file or os.environ.get("SAFEHOLD_PASSWORD_FILE")
        if pw_file:
            return Reference(file=str(Path(pw_file).absolute()))
        pw_cmd = self.password_command or os.environ.get("SAFEHOLD_PASSWORD_COMMAND")
        if pw_cmd:
            return Reference(command=pw_cmd)
        if os.environ.get("SAFEHOLD_PASSWORD") is not None:
            return Reference(env="SAFEHOLD_PASSWORD")
        cfg = self.config() if include_config and not self.repo_url else None
        if cfg is not None and cfg.repository.password is not None:
            return cfg.repository.password
        return None

    def get_password(self, *, confirm: bool = False, prompt: str = "Repository passphrase") -> str:
        """The passphrase, through the one secret-reference resolver (so a file, a command and a variable
        fail the same way: exit 2 with a message naming the reference); empty is always refused."""
        ref = self.password_ref()
        if ref is not None:
            value = resolve_passphrase(ref)
            self.secrets.append(value)
            return value
        if sys.stdin.isatty():
            pw = getpass.getpass(f"{prompt}: ")
            if confirm and getpass.getpass("Repeat it: ") != pw:
                raise UsageError("the passphrases do not match")
            if not pw:
                raise UsageError("an empty passphrase is not allowed", hint="Type the passphrase.")
            self.secrets.append(pw)
            return pw
        raise ConfigError(
            "no passphrase given",
            hint="Set SAFEHOLD_PASSWORD, SAFEHOLD_PASSWORD_FILE or SAFEHOLD_PASSWORD_COMMAND "
            "(or --password-file / --password-command).",
        )

    # ---- output ----------------------------------------------------------------------------------
    def emit(self, obj: Any, text: str | None = None) -> None:
        """Print the command's result: JSON with --json, else ``text``."""
        if text:
            self.journal.extend(text.splitlines())
        if self.json:
            click.echo(json.dumps(obj, indent=None, sort_keys=True, default=str))
            EMITTED.append(True)
        elif text is not None and not self.quiet:
            click.echo(text)

    def warn(self, text: str) -> None:
        """A warning or per-item error: always on stderr (also with --json and --quiet)."""
        self.journal.extend(text.splitlines())
        click.echo(text, err=True)

    def info(self, text: str) -> None:
        self.journal.extend(text.splitlines())
        if not self.json and not self.quiet:
            click.echo(text, err=True)

    def progress(self) -> Progress:
        if self.json or self.quiet or not sys.stderr.isatty():
            return NullProgress()
        from safehold.cli.progress import RichProgress

        return RichProgress()


def other_password_env() -> SecretSource | None:
    """SAFEHOLD_OTHER_PASSWORD as a reference, when it is set (the other repository of copy and
    init --copy-chunker-params-from); otherwise that side falls back to the usual sources."""
    return Reference(env="SAFEHOLD_OTHER_PASSWORD") if "SAFEHOLD_OTHER_PASSWORD" in os.environ else None


pass_app = click.make_pass_decorator(App)
