"""Finding, reading and validating the configuration file, collecting every problem with its path.

Search order of :func:`load_config`: the explicit path, ``$SAFEHOLD_CONFIG``, ``/etc/safehold/safehold.toml``,
``~/.config/safehold/safehold.toml``. An invalid file raises :class:`ConfigInvalid` (a ConfigError, exit
code 2) whose message holds one line per problem: ``At 'components.database.host': Input should be a
valid string``. Secret values are never part of a message (pydantic's input echo is switched off).

The schema (pydantic and every model) is imported only when a file is validated: finding that there is
no configuration, what most commands do first, costs no import.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safehold.errors import ConfigError

if TYPE_CHECKING:
    from safehold.config.schema import Config

ENV_VAR = "SAFEHOLD_CONFIG"
SYSTEM_PATH = Path("/etc/safehold/safehold.toml")
USER_PATH = Path("~/.config/safehold/safehold.toml")


class ConfigInvalid(ConfigError):
    """A configuration with problems; ``problems`` holds one ``At '<path>': <message>`` line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        n = len(problems)
        super().__init__(
            f"{source}: {n} problem{'s' if n != 1 else ''} in the configuration\n" + "\n".join(problems),
            hint=f"Fix each problem listed above in {source} ('At' names the setting); the README's "
            "configuration reference describes every setting.",
        )
        self.source = source
        self.problems = problems


def search_paths() -> list[Path]:
    """Where a configuration is looked for when none is named (after ``$SAFEHOLD_CONFIG``)."""
    return [SYSTEM_PATH, USER_PATH.expanduser()]


def default_config_path() -> Path:
    """Where a new configuration is written when none is named: /etc for root, else the user's folder."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return SYSTEM_PATH if os.geteuid() == 0 else USER_PATH.expanduser()


def find_config(path: Path | None = None) -> Path:
    """The configuration file to use; raises ConfigError when the named one or every default is missing."""
    named = path if path is not None else (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if named is not None:
        if not named.is_file():
            raise ConfigError(
                f"configuration file {named} does not exist",
                hint="Check --config / SAFEHOLD_CONFIG, or write one with 'safehold init --preset ...'.",
            )
        return named
    for candidate in search_paths():
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no configuration file found (looked in " + ", ".join(str(p) for p in search_paths()) + ")",
        hint="Pass --config FILE or set SAFEHOLD_CONFIG; 'safehold init --preset laravel APP_DIR' or "
        "'safehold config sample' gives you one to start from.",
    )


def parse_toml(text: str, source: str = "configuration") -> dict[str, Any]:
    """The TOML document as a dict; raises ConfigError naming the line of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid TOML: {exc}", hint="Fix the syntax at the line named."
        ) from None


def problems(data: Any) -> list[str]:
    """Every problem of the document ``data`` as ``At '<path>': <message>``; empty when it is valid."""
    from pydantic import BaseModel, ValidationError

    from safehold.config.schema import (
        COLLECT,
        Config,
        cross_reference_problems,
        error_lines,
        fold_component,
        format_loc,
    )
    from safehold.sources import registry

    found: list[tuple[str, str]] = []
    try:
        Config.model_validate(data, context={COLLECT: True})
    except ValidationError as exc:
        found.extend(error_lines(exc))
    components = data.get("components") if isinstance(data, dict) else None
    for name, raw in (components if isinstance(components, dict) else {}).items():
        folded = fold_component(raw)
        if not isinstance(folded, dict) or not isinstance(folded.get("options"), dict):
            continue
        kind = folded.get("kind")
        if not isinstance(kind, str) or kind not in registry.kinds():
            continue
        try:
            model: type[BaseModel] = registry.source_class(kind).Options
        except (ImportError, AttributeError) as exc:
            found.append((format_loc(("components", name, "kind")), f"kind {kind!r} cannot be loaded: {exc}"))
            continue
        try:
            model.model_validate(folded["options"])
        except ValidationError as exc:
            found.extend(error_lines(exc, ("components", name)))
    found.extend((format_loc(loc), msg) for loc, msg in cross_reference_problems(data))
    out: list[str] = []
    for loc, msg in found:
        line = f"At '{loc}': {msg}"
        if line not in out:
            out.append(line)
    return out


def validate(data: Any, source: str = "configuration") -> Config:
    """A Config from the document ``data``; raises ConfigInvalid listing every problem."""
    from safehold.config.schema import COLLECT, Config

    found = problems(data)
    if found:
        raise ConfigInvalid(source, found)
    return Config.model_validate(data, context={COLLECT: True})


def load_config(path: Path | None = None) -> Config:
    """Find (see :func:`find_config`), read and validate the configuration; raises ConfigError."""
    file = find_config(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc}") from None
    return validate(parse_toml(text, str(file)), str(file))
