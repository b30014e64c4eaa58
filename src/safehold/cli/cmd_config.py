"""Configuration commands: ``config check``, ``config sample``, ``config reference``; and
:func:`run_init_preset`, which ``init --preset`` calls to discover a server and write its configuration."""

from __future__ import annotations

from pathlib import Path

import click

import safehold
from safehold.cli.app import App, pass_app
from safehold.config import docgen
from safehold.config.inert import inert_settings
from safehold.config.loader import ConfigInvalid, default_config_path, find_config, load_config
from safehold.errors import UsageError
from safehold.fsutil import atomic_write
from safehold.secrets import SecretRef


@click.group("config")
def config_group() -> None:
    """Check the configuration, print a commented sample or the reference."""


@config_group.command("check")
@pass_app
def check(app: App) -> None:
    """Validate the configuration (--config FILE, SAFEHOLD_CONFIG or the default locations) and report
    every problem with its location (exit 2 on problems)."""
    path = find_config(Path(app.config_path) if app.config_path else None)
    try:
        cfg = load_config(path)
    except ConfigInvalid as exc:
        app.emit({"ok": False, "file": str(path), "problems": exc.problems})
        raise
    n, m = len(cfg.components), len(cfg.profiles)
    inert = inert_settings(cfg)
    for w in inert:
        app.warn(f"warning: {w}")
    app.emit(
        {
            "ok": True,
            "file": str(path),
            "components": sorted(cfg.components),
            "profiles": sorted(cfg.profiles),
            "warnings": inert,
        },
        f"configuration OK: {n} component{'s' if n != 1 else ''}, {m} profile{'s' if m != 1 else ''} ({path})",
    )


@config_group.command("sample")
def sample() -> None:
    """Print a commented sample configuration generated from the schema."""
    click.echo(docgen.sample(), nl=False)


def _project_readme() -> Path:
    return Path(safehold.__file__).resolve().parents[2] / "README.md"


@config_group.command("reference")
@click.option("--update-readme", is_flag=True, help="Rewrite the README's configuration reference section.")
@click.option(
    "--readme",
    type=click.Path(path_type=Path, dir_okay=False),
    help="README to update (default: the one of the source tree safehold runs from).",
)
@pass_app
def reference(app: App, update_readme: bool, readme: Path | None) -> None:
    """Print the configuration reference (Markdown) generated from the schema."""
    if not update_readme:
        click.echo(docgen.reference(), nl=False)
        return
    target = readme or _project_readme()
    if not target.is_file():
        raise UsageError(f"no README at {target}", hint="Pass --readme PATH.")
    changed = docgen.update_readme(target)
    app.emit(
        {"readme": str(target), "changed": changed}, f"{'updated' if changed else 'unchanged'}: {target}"
    )


# ---------------------------------------------------------------------------------------- init --preset


def run_init_preset(
    app: App,
    preset: str,
    app_dir: Path | None,
    config_path: Path | None,
    root: Path | None,
    *,
    force: bool = False,
    repo_url: str | None = None,
) -> None:
    """Discover the server with ``preset``, print what was and was not found, write the configuration
    to ``config_path`` (default location when None; an existing file only with ``force``) and create
    the repository it names when there is none yet.

    Raises UsageError for an unknown preset, a missing APP_DIR or an existing configuration file.
    """
    from safehold.config.presets import PRESETS, discover_generic, discover_laravel

    root = root or Path("/")
    url = repo_url or app.repo_url
    source = app.password_ref(include_config=False)
    ref = None if source is None else SecretRef.of(source)
    if preset == "laravel":
        if app_dir is None:
            raise UsageError(
                "--preset laravel needs the application folder",
                hint="safehold init --preset laravel /var/www/app",
            )
        if not app_dir.is_dir():
            raise UsageError(f"{app_dir} is not a folder")
        disc = discover_laravel(app_dir.absolute(), root=root, repo_url=url, repo_password=ref)
    elif preset == "generic":
        paths = [app_dir.absolute()] if app_dir is not None else []
        disc = discover_generic(root, paths=paths, repo_url=url, repo_password=ref)
    else:
        raise UsageError(f"unknown preset {preset!r}", hint=f"Presets: {', '.join(PRESETS)}.")
    target = config_path or default_config_path()
    if target.exists() and not force:
        raise UsageError(
            f"configuration file {target} exists; not overwriting it",
            hint="Pass --force to replace it, or --config another path.",
        )
    cfg = disc.config
    atomic_write(target, cfg.to_toml().encode(), parents=True)
    warnings = []
    if ref is not None and ref.env is not None:
        # The variable is set in this shell; cron and systemd timers will not have it.
        warnings.append(
            f"the configuration takes the passphrase from the environment variable {ref.env}, which cron "
            "and systemd timers do not have: scheduled backups will fail. Keep it in a file only root can "
            f"read: install -m 600 /dev/null /root/.safehold-pass && printenv {ref.env} > /root/.safehold-pass"
            f', then set password = {{ file = "/root/.safehold-pass" }} under [repository] in {target}.'
        )
    warnings += inert_settings(cfg)
    for w in warnings:
        app.warn(f"warning: {w}")
    profiles = ", ".join(cfg.profiles)
    summary = f"wrote {target}: {len(cfg.components)} components, {len(cfg.profiles)} profiles ({profiles})"
    backend = app.backend(cfg.repository.url)
    created = False
    if not backend.exists():
        from safehold.cli.repo_setup import create_repository

        create_repository(app, backend, app.get_password(confirm=True, prompt="New repository passphrase"))
        created = True
    where = backend.properties.location
    repo_line = (
        f"created repository at {where}" if created else f"repository at {where} exists; left as it is"
    )
    app.emit(
        {
            **disc.to_json(),
            "config": str(target),
            "repository": where,
            "repository_created": created,
            "warnings": warnings,
        },
        f"{disc.report()}\n{summary}\n{repo_line}\nCheck it with: safehold config check --config {target}",
    )


COMMANDS = [config_group]
