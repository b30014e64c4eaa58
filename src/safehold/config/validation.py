"""Validation helpers shared by the schema modules: durations, names, paths, error paths, cross-references.

Paths are written ``components.database.host`` with list indexes as ``hooks.before_backup[0]``; a
message never contains the offending input (it might be a secret).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from safehold.config.duration import parse_duration

#: Validation context key: when set, the models skip the checks :func:`loader.validate` does itself.
COLLECT = "safehold_collect_errors"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]


def check_name(what: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r}: use lowercase letters, digits, '-' and '_'")


def named_entries(what: str) -> AfterValidator:
    """For a table of named entries (``[components.NAME]``, ``[notifications.targets.NAME]``): every key
    is a name (:func:`check_name`; ``what`` says whose, in the message)."""

    def check(table: dict[str, Any]) -> dict[str, Any]:
        for name in table:
            check_name(what, name)
        return table

    return AfterValidator(check)


def absolute_path(ending: str = "") -> AfterValidator:
    """For a path option: absolute, no NUL, and ending in ``ending`` when one is given."""

    def check(value: str) -> str:
        if not value.startswith("/") or "\x00" in value or not value.endswith(ending):
            raise ValueError("must be an absolute path" + (f" ending in {ending}" if ending else ""))
        return value

    return AfterValidator(check)


class StrictModel(BaseModel):
    """Base of every configuration table: unknown keys are errors, inputs never echoed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``("hooks", "before_backup", 0, "command")`` -> ``hooks.before_backup[0].command``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def error_lines(exc: ValidationError, prefix: Loc = ()) -> list[tuple[str, str]]:
    """Each error of ``exc`` as (dotted path, message), paths prefixed; the input is never shown."""
    out = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        out.append((format_loc((*prefix, *err["loc"])), msg))
    return out


def cross_reference_problems(data: Any) -> list[tuple[Loc, str]]:
    """Names that must refer to something defined elsewhere in the document ``data`` (a raw dict).

    Tolerates malformed parts (they are reported by the structural validation): profiles name existing
    components and off-site repositories, defaults.profile and drill.profile exist, health checks name
    components of a fitting kind.
    """
    if not isinstance(data, dict):
        return []
    problems: list[tuple[Loc, str]] = []

    def names(section: str) -> dict[str, Any]:
        value = data.get(section)
        return value if isinstance(value, dict) else {}

    components, offsite, profiles = names("components"), names("offsite"), names("profiles")
    for pname, prof in profiles.items():
        if not isinstance(prof, dict):
            continue
        for field, known, what in (
            ("components", components, "component"),
            ("offsite", offsite, "off-site repository"),
        ):
            refs = prof.get(field)
            if not isinstance(refs, list):
                continue
            for i, ref in enumerate(refs):
                if isinstance(ref, str) and ref not in known:
                    problems.append(
                        (
                            ("profiles", pname, field, i),
                            f"no {what} named {ref!r} (defined: {', '.join(sorted(known)) or 'none'})",
                        )
                    )
    for section in ("defaults", "drill"):
        table = data.get(section)
        if (
            isinstance(table, dict)
            and isinstance(table.get("profile"), str)
            and table["profile"] not in profiles
        ):
            problems.append(
                (
                    (section, "profile"),
                    f"no profile named {table['profile']!r} (defined: {', '.join(sorted(profiles)) or 'none'})",
                )
            )
    schedule = data.get("schedule")
    backups = schedule.get("backups") if isinstance(schedule, dict) else None
    for pname in backups if isinstance(backups, dict) else {}:
        if pname not in profiles:
            problems.append(
                (
                    ("schedule", "backups", pname),
                    f"no profile named {pname!r} (defined: {', '.join(sorted(profiles)) or 'none'})",
                )
            )
    checks = data.get("health_checks")
    seen: set[str] = set()
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        name = check.get("name") if isinstance(check, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append((("health_checks", i, "name"), f"another health check is named {name!r}"))
            seen.add(name)
        if not isinstance(check, dict) or not isinstance(check.get("component"), str):
            continue
        ref = check["component"]
        comp = components.get(ref)
        if comp is None:
            problems.append((("health_checks", i, "component"), f"no component named {ref!r}"))
            continue
        # the check kinds that read a component are named after the component kind they read
        want = (
            str(check.get("kind"))
            if check.get("kind") in ("mysql", "postgresql", "sqlite", "redis")
            else None
        )
        if want and isinstance(comp, dict) and comp.get("kind") != want:
            problems.append((("health_checks", i, "component"), f"component {ref!r} is not of kind {want!r}"))
    return problems
