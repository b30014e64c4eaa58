"""What every command shares: global options, passphrase lookup, opening the repository, output."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from safehold.backends.base import Backend
from safehold.engine.progress import NullProgress, Progress
from safehold.engine.repository import Repository
from safehold.errors import ConfigError, RepositoryNotFound, UsageError

if TYPE_CHECKING:
    from safehold.config.schema import Config

#: Set once a command printed its JSON result, so an error after it does not print a second document.
EMITTED: list[bool] = []


@dataclass
class App:
    repo_url: str | None = None
    password: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    json: bool = False
    debug: bool = False
    quiet: bool = False
    config_path: str | None = None
    offsite: str | None = None
    _backends: list[Backend] = field(default_factory=list)
    _config: Config | None = None
    _config_loaded: bool = False

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
        return Repository.open(backend, self.get_password())

    def close(self) -> None:
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

    def get_password(self, *, confirm: bool = False, prompt: str = "Repository passphrase") -> str:
        if self.password is not None:
            return self.password
        if self.offsite and not self.repo_url:
            site = self._offsite_settings()
            if site.password is not None:
                return str(site.password.resolve())
        pw_file = self.password_file or os.environ.get("SAFEHOLD_PASSWORD_FILE")
        pw_cmd = self.password_command or os.environ.get("SAFEHOLD_PASSWORD_COMMAND")
        if pw_file:
            try:
                with open(pw_file, encoding="utf-8") as f:
                    return f.read().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read the passphrase file {pw_file}: {exc.strerror}") from None
        if pw_cmd:
            proc = subprocess.run(shlex.split(pw_cmd), capture_output=True, check=False)
            if proc.returncode != 0:
                raise ConfigError(f"the passphrase command exited with status {proc.returncode}")
            return proc.stdout.decode().rstrip("\r\n")
        env = os.environ.get("SAFEHOLD_PASSWORD")
        if env is not None:
            return env
        cfg = self.config() if not self.repo_url else None
        if cfg is not None and cfg.repository.password is not None:
            return str(cfg.repository.password.resolve())
        if sys.stdin.isatty():
            pw = getpass.getpass(f"{prompt}: ")
            if confirm and getpass.getpass("Repeat it: ") != pw:
                raise UsageError("the passphrases do not match")
            if not pw:
                raise UsageError("an empty passphrase is not allowed")
            return pw
        raise ConfigError(
            "no passphrase given",
            hint="Set SAFEHOLD_PASSWORD, SAFEHOLD_PASSWORD_FILE or SAFEHOLD_PASSWORD_COMMAND "
            "(or --password-file / --password-command).",
        )

    # ---- output ----------------------------------------------------------------------------------
    def emit(self, obj: Any, text: str | None = None) -> None:
        """Print the command's result: JSON with --json, else ``text``."""
        if self.json:
            click.echo(json.dumps(obj, indent=None, sort_keys=True, default=str))
            EMITTED.append(True)
        elif text is not None and not self.quiet:
            click.echo(text)

    def warn(self, text: str) -> None:
        """A warning or per-item error: always on stderr (also with --json and --quiet)."""
        click.echo(text, err=True)

    def info(self, text: str) -> None:
        if not self.json and not self.quiet:
            click.echo(text, err=True)

    def progress(self) -> Progress:
        if self.json or self.quiet or not sys.stderr.isatty():
            return NullProgress()
        from safehold.cli.progress import RichProgress

        return RichProgress()


pass_app = click.make_pass_decorator(App)
