"""Repository-level commands: init, key, unlock, cat."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click

from safehold.backends.base import FileType, Handle
from safehold.cli.app import App, other_password_env, pass_app
from safehold.cli.repo_setup import create_repository
from safehold.engine.format.crypto import SessionCache
from safehold.engine.format.lock import read_locks
from safehold.engine.format.repository import RepoConfig
from safehold.engine.format.treewalk import load_tree
from safehold.errors import NotFound, UsageError
from safehold.secretvalue import Reference, resolve_passphrase


@click.command()
@click.argument("app_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(["laravel", "generic"]),
    help="Inspect this server and write a configuration (and create its repository).",
)
@click.option(
    "--root", type=click.Path(path_type=Path), help="With --preset: probe below this folder instead of /."
)
@click.option("--force", is_flag=True, help="With --preset: overwrite an existing configuration file.")
@click.option(
    "--copy-chunker-params-from",
    "chunker_from",
    metavar="URL",
    help="Use the deduplication parameters of another repository (copies between them deduplicate).",
)
@click.option(
    "--other-password-file",
    envvar="SAFEHOLD_OTHER_PASSWORD_FILE",
    help="Passphrase file of the --copy-chunker-params-from repository [env: SAFEHOLD_OTHER_PASSWORD_FILE].",
)
@pass_app
def init(
    app: App,
    app_dir: Path | None,
    preset: str | None,
    root: Path | None,
    force: bool,
    chunker_from: str | None,
    other_password_file: str | None,
) -> None:
    """Create a new, empty repository; with --preset, first discover the server and write a configuration.

    \b
    safehold init --repo /srv/backup/safehold
    safehold init --preset laravel /var/www/app --repo /srv/backup/safehold
    """
    if preset:
        from safehold.cli.cmd_config import run_init_preset

        config_path = Path(app.config_path) if app.config_path else None
        run_init_preset(app, preset, app_dir, config_path, root, force=force, repo_url=app.repo_url)
        return
    if app_dir is not None:
        raise UsageError("APP_DIR is only used with --preset")
    other = None
    if app.offsite and not chunker_from and not app.repo_url:
        other = _main_repository_config(app)
    if chunker_from:
        src_app = App(
            password_file=other_password_file,
            password_from=None if other_password_file else other_password_env(),
        )
        other = src_app.open_repo(chunker_from).config
        app._backends += src_app._backends
    backend = app.backend()
    repo, boot = create_repository(
        app, backend, app.get_password(confirm=True, prompt="New repository passphrase"), chunker_from=other
    )
    app.emit(
        {"id": repo.config.id, "location": backend.properties.location, "bootstrap": boot.as_dict()},
        f"created repository {repo.config.id[:8]} at {backend.properties.location}\n"
        "Keep the passphrase safe: without it the data cannot be recovered.",
    )


def _main_repository_config(app: App) -> RepoConfig | None:
    """For ``--offsite NAME init``: the main repository's config, so that the off-site repository gets its
    deduplication parameters and copies to it send only new data (None when there is no main one yet)."""
    config = app.config(required=True)
    assert config is not None
    main = App(config_path=app.config_path)
    try:
        if not main.backend().exists():
            return None
        return main.open_repo().config
    finally:
        app._backends += main._backends


@click.group()
def key() -> None:
    """Manage the passphrases (key files) that open the repository."""


@key.command("list")
@pass_app
def key_list(app: App) -> None:
    """List key files."""
    repo = app.open_repo()
    unusable: list[tuple[str, str]] = []
    rows: list[dict[str, object]] = [
        {
            "id": name,
            "current": name == repo.key_name,
            "created": kf.created,
            "host": kf.host,
            "user": kf.user,
            "kdf": kf.kdf,
        }
        for name, kf in repo.list_keys(unusable)
    ]
    rows += [{"id": name, "current": False, "unusable": why} for name, why in unusable]
    text = "\n".join(
        f"{'*' if r['current'] else ' '} {str(r['id'])[:8]}  "
        + (
            f"UNUSABLE: {r['unusable']}"
            if "unusable" in r
            else f"{r['created']}  {r['user']}@{r['host']}  {r['kdf']}"
        )
        for r in rows
    )
    app.emit(rows, text)


def _new_passphrase(path: str | None) -> str:
    """The new passphrase: from ``--new-password-file``, else asked twice on a terminal. Never from the
    SAFEHOLD_PASSWORD* variables, which name the passphrase in use."""
    if path:
        return resolve_passphrase(Reference(file=path))
    if not sys.stdin.isatty():
        raise UsageError(
            "no new passphrase given", hint="Pass --new-password-file FILE (or run on a terminal)."
        )
    pw = getpass.getpass("New passphrase: ")
    if getpass.getpass("Repeat it: ") != pw:
        raise UsageError("the passphrases do not match")
    if not pw:
        raise UsageError("an empty passphrase is not allowed", hint="Type the new passphrase.")
    return pw


@key.command("add")
@click.option("--new-password-file", help="Read the new passphrase from this file.")
@pass_app
def key_add(app: App, new_password_file: str | None) -> None:
    """Add a passphrase."""
    repo = app.open_repo()
    new = _new_passphrase(new_password_file)
    lock = repo.lock(exclusive=False, operation="key add")
    try:
        lock.confirm()
        name = repo.add_key(new)
    finally:
        lock.release()
    app.emit({"id": name}, f"added key {name[:8]}")


@key.command("remove")
@click.argument("key_id")
@pass_app
def key_remove(app: App, key_id: str) -> None:
    """Remove a passphrase (never the one in use, never the last)."""
    repo = app.open_repo()
    names = [fi.name for fi in repo.backend.list(FileType.KEY) if fi.name.startswith(key_id)]
    if len(names) != 1:
        raise NotFound(f"no unique key {key_id!r}", hint="Run 'safehold key list'.")
    if names[0] == repo.key_name:
        raise UsageError(
            "refusing to remove the key in use", hint="Open the repository with another passphrase first."
        )
    lock = repo.lock(exclusive=True, operation="key remove")
    try:
        lock.confirm()
        repo.backend.remove(Handle(FileType.KEY, names[0]))
    finally:
        lock.release()
    app.emit({"removed": names[0]}, f"removed key {names[0][:8]}")


@key.command("passwd")
@click.option("--new-password-file", help="Read the new passphrase from this file.")
@pass_app
def key_passwd(app: App, new_password_file: str | None) -> None:
    """Change the passphrase in use (adds a new key, then removes the old one)."""
    repo = app.open_repo()
    new = _new_passphrase(new_password_file)
    lock = repo.lock(exclusive=True, operation="key passwd")
    try:
        lock.confirm()
        name = repo.add_key(new)
        lock.confirm()  # the old key goes only while the new one is known to be in place under our lock
        repo.backend.remove(Handle(FileType.KEY, repo.key_name))
    finally:
        lock.release()
    app.emit({"id": name, "removed": repo.key_name}, f"changed passphrase: new key {name[:8]}")


@click.command()
@click.option("--remove-all", is_flag=True, help="Remove every lock, also live ones (dangerous).")
@pass_app
def unlock(app: App, remove_all: bool) -> None:
    """Remove stale locks (dead process on this host, or lease expired)."""
    repo = app.open_repo()
    removed = []
    for info in read_locks(repo.backend, repo.keys.lock, SessionCache(repo.keys.lock)):
        if remove_all or info.stale():
            repo.backend.remove(Handle(FileType.LOCK, info.name))
            removed.append(info.to_json())
    app.emit({"removed": removed}, f"removed {len(removed)} lock(s)")


@click.command()
@click.argument("what", type=click.Choice(["config", "snapshot", "index", "key", "tree", "locks"]))
@click.argument("object_id", required=False)
@pass_app
def cat(app: App, what: str, object_id: str | None) -> None:
    """Print a repository object as JSON (for debugging)."""
    repo = app.open_repo()
    if what == "config":
        obj: object = repo.config.public()
    elif what == "locks":
        obj = [i.to_json() for i in read_locks(repo.backend, repo.keys.lock, SessionCache(repo.keys.lock))]
    elif object_id is None:
        raise UsageError(f"'cat {what}' needs an id")
    elif what == "snapshot":
        obj = repo.find_snapshot(object_id).to_json()
    elif what == "key":
        names = [fi.name for fi in repo.backend.list(FileType.KEY) if fi.name.startswith(object_id)]
        if len(names) != 1:
            raise NotFound(f"no unique key {object_id!r}")
        key_doc = json.loads(repo.backend.load(Handle(FileType.KEY, names[0])))
        key_doc["data"] = "(wrapped master key)"
        obj = key_doc
    elif what == "index":
        from safehold.engine.format.indexfile import decode_index

        obj = [
            {
                "pack": pid.hex(),
                "blobs": [
                    {
                        "id": e.id.hex(),
                        "type": e.type,
                        "offset": e.offset,
                        "length": e.length,
                        "raw_length": e.raw_length,
                    }
                    for e in entries
                ],
            }
            for pid, _env, entries in decode_index(repo.load_file(FileType.INDEX, object_id))
        ]
    else:
        obj = [n.to_json() for n in load_tree(repo, bytes.fromhex(object_id))]
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


COMMANDS = [init, key, unlock, cat]
