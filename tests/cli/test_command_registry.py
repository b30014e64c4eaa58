"""The lazy command map names every command each CLI module defines, and only those."""

from __future__ import annotations

import importlib
import pkgutil

import safehold.cli
from safehold.cli.main import COMMAND_MODULES, cli


def test_every_command_is_mapped_to_its_module() -> None:
    defined: dict[str, str] = {}
    for mod in pkgutil.iter_modules(safehold.cli.__path__):
        if mod.name.startswith("cmd_"):
            for command in importlib.import_module(f"safehold.cli.{mod.name}").COMMANDS:
                defined[command.name] = mod.name
    assert defined == COMMAND_MODULES
    for name in COMMAND_MODULES:
        assert cli.get_command(None, name) is not None  # type: ignore[arg-type]
