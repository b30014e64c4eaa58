"""Hints tell the user something they can do: no command that just failed, no option that does not exist."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import safehold
from safehold.cli.main import cli, main
from safehold.errors import EXIT_WRONG_PASSWORD, without_self_reference

SRC = Path(safehold.__file__).parent


def _texts(node: ast.AST) -> Iterator[str]:
    """The literal text of a string expression (f-string parts joined, placeholders as 'X')."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)  # type: ignore[misc]
    elif isinstance(node, ast.BinOp):
        yield "".join(_texts(node.left)) + "".join(_texts(node.right))
    elif isinstance(node, ast.IfExp):
        yield from _texts(node.body)
        yield from _texts(node.orelse)


def _hints() -> Iterator[tuple[str, str]]:
    """(where, text) of every literal hint and default hint, and of every restore warning."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            hint = (isinstance(node, ast.keyword) and node.arg == "hint") or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "default_hint" for t in node.targets)
            )
            if hint:
                yield from ((where, t) for t in _texts(node.value))  # type: ignore[union-attr]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "warnings"
            ):
                yield from ((where, t) for a in node.args for t in _texts(a))


def _command_options() -> tuple[set[tuple[str, ...]], set[str]]:
    """Every command path and every option spelling the CLI accepts."""
    ctx = click.Context(cli)
    paths: set[tuple[str, ...]] = set()
    options = {o for p in cli.params for o in getattr(p, "opts", [])} | {"--help"}

    def walk(path: tuple[str, ...], cmd: click.Command) -> None:
        paths.add(path)
        for p in cmd.params:
            options.update(getattr(p, "opts", []) + getattr(p, "secondary_opts", []))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk((*path, name), sub)

    walk((), cli)
    return paths, options


def test_every_hint_names_commands_and_options_that_exist() -> None:
    paths, options = _command_options()
    hints = list(_hints())
    assert len(hints) > 80
    bad = []
    for where, text in hints:
        own = re.sub(r"'(?!safehold )[a-z][\w-]* [^']*'", "", text)  # another program's command line
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", own):
            if opt not in options:
                bad.append(f"{where}: option {opt} does not exist: {text!r}")
        for suggestion in re.findall(r"'safehold ([^']+)'", text):
            words = tuple(w for w in suggestion.split() if not w.startswith("-") and w.islower())
            if not any(words[: len(p)] == p and p for p in paths):
                bad.append(f"{where}: no command {suggestion!r}: {text!r}")
        if re.search(r"\b(run_install|target_root|read_only|dry_run)\b", text):
            bad.append(f"{where}: names an internal option instead of a flag: {text!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("hint", "running", "kept"),
    [
        ("Fix it. Run 'safehold config check' to see more.", ["config", "check"], "Fix it."),
        ("Run 'safehold check --read-data' to find it.", ["check", "--read-data"], ""),
        (
            "Run 'safehold check --read-data' to find it.",
            ["check"],
            "Run 'safehold check --read-data' to find it.",
        ),
        ("Bad; 'safehold key list' shows the keys.", ["key", "list", "--repo", "x"], "Bad;"),
        (
            "Bad; 'safehold key list' shows the keys.",
            ["snapshots"],
            "Bad; 'safehold key list' shows the keys.",
        ),
    ],
)
def test_without_self_reference(hint: str, running: list[str], kept: str) -> None:
    assert without_self_reference(hint, running) == kept


def test_wrong_passphrase_does_not_send_the_user_to_a_command_that_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "right")
    assert main(["init", "--repo", str(tmp_path / "r")]) == 0
    monkeypatch.setenv("SAFEHOLD_PASSWORD", "wrong")
    capsys.readouterr()
    for argv in (["key", "list"], ["snapshots"]):
        assert main([*argv, "--repo", str(tmp_path / "r")]) == EXIT_WRONG_PASSWORD
        hint = capsys.readouterr().err.split("hint:", 1)[1]
        assert "key list" not in hint
        assert "SAFEHOLD_PASSWORD_FILE" in hint


def test_a_hint_that_only_repeated_the_command_is_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safehold.errors import IntegrityError

    err = IntegrityError("x")
    assert "'safehold check --read-data'" in err.hint
    assert without_self_reference(err.hint, ["check", "--read-data"]) == ""
