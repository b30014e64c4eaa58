"""Every global option is accepted before the command and after any command, nested ones included.

The commands are not listed here: they are derived from the CLI's own command map (lazily loaded modules
included), so a command added later is covered without touching this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
import pytest

from safehold.cli.app import App
from safehold.cli.globalopts import GLOBAL_OPTIONS
from safehold.cli.main import cli, main

VALUES: dict[str, Any] = {
    "repo_url": "/some/repo",
    "password_file": "/some/pass",
    "password_command": "cat /some/pass",
    "config_path": "/some/safehold.toml",
    "offsite": "backupserver",
    "lock_wait": "10m",
}


def _commands() -> Iterator[tuple[list[str], click.Command]]:
    """(path, command) of every runnable command, walking groups recursively."""
    ctx = click.Context(cli)

    def walk(path: list[str], cmd: click.Command) -> Iterator[tuple[list[str], click.Command]]:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk([*path, name], sub)
        else:
            yield path, cmd

    yield from walk([], cli)


def _required_arguments(cmd: click.Command) -> list[str]:
    args = []
    for p in cmd.params:
        if isinstance(p, click.Argument) and p.required:
            args.append(p.type.choices[0] if isinstance(p.type, click.Choice) else "x")
    return args


def _global_args() -> list[str]:
    out: list[str] = []
    for o in GLOBAL_OPTIONS:
        out += [o.decls[0]] if o.flag else [o.decls[0], VALUES[o.dest]]
    return out


ALL = list(_commands())


def test_the_walk_finds_nested_and_lazily_loaded_commands() -> None:
    paths = {" ".join(p) for p, _ in ALL}
    assert {"backup", "snapshots", "config check", "key add", "backend validate", "doctor"} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_global_options_reach_the_app(
    path: list[str], command: click.Command, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for o in GLOBAL_OPTIONS:
        if o.envvar:
            monkeypatch.delenv(o.envvar, raising=False)
    seen: list[App] = []

    def record(*_args: Any, **_kwargs: Any) -> None:
        app = click.get_current_context().find_object(App)
        assert app is not None
        seen.append(app)

    monkeypatch.setattr(command, "callback", record)
    rest = [*path, *_required_arguments(command)]
    argv = [*_global_args(), *rest] if where == "before" else [*rest, *_global_args()]
    assert main(argv) == 0
    assert len(seen) == 1
    app = seen[0]
    for o in GLOBAL_OPTIONS:
        assert getattr(app, o.dest) == (True if o.flag else VALUES[o.dest]), o.long


def test_long_spellings_after_a_nested_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from safehold.cli.cmd_repo import key_add

    seen: list[App] = []
    monkeypatch.setattr(key_add, "callback", lambda **_: seen.append(click.get_current_context().obj))
    monkeypatch.delenv("SAFEHOLD_REPOSITORY", raising=False)
    assert main(["key", "add", "--repo=/r", "--quiet", "--config", "/c.toml"]) == 0
    assert (seen[0].repo_url, seen[0].quiet, seen[0].config_path) == ("/r", True, "/c.toml")


def test_the_command_line_overrides_the_environment_wherever_it_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from safehold.cli.cmd_snapshots import snapshots

    seen: list[App] = []
    monkeypatch.setattr(snapshots, "callback", lambda **_: seen.append(click.get_current_context().obj))
    monkeypatch.setenv("SAFEHOLD_REPOSITORY", "/from/env")
    assert main(["snapshots", "--repo", "/from/line"]) == 0
    assert main(["snapshots"]) == 0
    assert [a.repo_url for a in seen] == ["/from/line", "/from/env"]


def test_two_different_values_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", "/a", "snapshots", "--repo", "/b"]) == 2
    assert "--repo is given twice with different values" in capsys.readouterr().err


def test_help_of_a_command_says_global_options_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Global options (--repo" in out
