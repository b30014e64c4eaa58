"""Reading the schema for documentation: options with type, default, description and example, and the
sections (tables) they live in. Shared by the sample and the reference generators so the two cannot
disagree.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from safehold.config.schema import Component, Config, Duration
from safehold.config.tables import Calendar
from safehold.secrets import SecretRef
from safehold.sources import registry


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Marks "no default" (a required option) and "no usable example".
MISSING: Any = _Missing()

#: Component names used for each kind in the sample (``app`` for files, ``database`` for mysql, ...).
SAMPLE_NAMES: dict[str, str] = {
    "files": "app",
    "mysql": "database",
    "postgresql": "postgres",
    "command": "crontab-export",
    "saas/retell": "retell",
    "saas/calcom": "calcom",
}
#: Kinds whose sample component is active (the others are commented out).
SAMPLE_ACTIVE_KINDS = ("files", "mysql")


@dataclass
class Option:
    """One plain option (a key = value line)."""

    name: str
    type: str
    required: bool
    default: Any
    description: str
    example: Any


@dataclass
class Section:
    """A table of options: ``[repository]``, ``[offsite.<name>]``, ``[[hooks.before_backup]]``..."""

    path: tuple[str, ...]  # with "<name>" where a user-chosen name goes
    model: type[BaseModel]
    description: str
    array: bool = False
    optional: bool = False
    nullable: bool = False  # absent (None) by default: the sample comments the whole table out
    name_example: str = "example"  # a name for "<name>" in the sample
    options: list[Option] = field(default_factory=list)

    @property
    def header(self) -> str:
        dotted = ".".join(self.path)
        return f"[[{dotted}]]" if self.array else f"[{dotted}]"


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel) and t is not SecretRef


def nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('table'|'map'|'array', model) when the annotation is a sub-table, a map of them or an array."""
    t = _strip_optional(annotation)
    if _is_model(t):
        return "table", t
    origin, args = get_origin(t), get_args(t)
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return "map", args[1]
    if origin is list and len(args) == 1 and _is_model(args[0]):
        return "array", args[0]
    return None


def type_name(annotation: Any) -> str:
    """A reader's name for a type: ``list of string``, ``secret reference``, ``"abort" or "continue"``."""
    if annotation == Duration:
        return "duration"
    if annotation == Calendar:
        return "calendar"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is Literal:
        return " or ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {type_name(args[1])}" if len(args) == 2 else "table"
    if annotation is SecretRef:
        return "secret reference"
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "none"}
    if annotation in simple:
        return simple[annotation]
    if annotation is Any:
        return "any"
    if _is_model(annotation):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def default_of(info: FieldInfo) -> Any:
    """The default value (factories called), or MISSING for a required option."""
    if info.is_required():
        return MISSING
    return info.get_default(call_default_factory=True)


def example_of(info: FieldInfo) -> Any:
    """The first example that is not None (MISSING when there is none)."""
    for ex in info.examples or []:
        if ex is not None:
            return ex
    return MISSING


def options_of(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> list[Option]:
    """The plain options of ``model`` (sub-tables left out), in declaration order."""
    out = []
    for name, info in model.model_fields.items():
        if name in skip or nested(info.annotation) is not None:
            continue
        out.append(
            Option(
                name=name,
                type=type_name(
                    Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
                ),
                required=info.is_required(),
                default=default_of(info),
                description=" ".join((info.description or "").split()),
                example=example_of(info),
            )
        )
    return out


def first_line(doc: str | None) -> str:
    """The first paragraph of a docstring on one line, RST literals as Markdown code."""
    text = (doc or "").strip().split("\n\n")[0]
    return " ".join(text.split()).replace("``", "`")


def sections() -> list[Section]:
    """Every table of the configuration file except the per-kind component options, in file order."""
    out: list[Section] = [Section((), Config, first_line(Config.__doc__), options=options_of(Config))]

    def walk(path: tuple[str, ...], model: type[BaseModel], info: FieldInfo) -> None:
        kind = nested(info.annotation)
        assert kind is not None
        shape, sub = kind
        desc = " ".join((info.description or first_line(sub.__doc__)).split())
        optional = not info.is_required()
        name_example = "example"
        if shape == "map":
            path = (*path, "<name>")
            examples = [e for e in info.examples or [] if isinstance(e, dict) and e]
            if examples:
                name_example = next(iter(examples[0]))
        skip = ("options",) if sub is Component else ()
        sec = Section(
            path,
            sub,
            desc,
            array=shape == "array",
            optional=optional,
            nullable=optional and info.get_default() is None,
            name_example=name_example,
            options=options_of(sub, skip=skip),
        )
        out.append(sec)
        for name, child in sub.model_fields.items():
            if nested(child.annotation) is not None:
                walk((*path, name), sub, child)

    for name, info in Config.model_fields.items():
        if nested(info.annotation) is not None:
            walk((name,), Config, info)
    return out


def kind_models() -> list[tuple[str, type[BaseModel]]]:
    """Every registered source kind with its Options model, sorted by kind."""
    return [(kind, registry.source_class(kind).Options) for kind in registry.kinds()]


def kind_summary(kind: str, model: type[BaseModel]) -> str:
    """What a kind's Options model says about itself (its docstring), or a neutral line."""
    own = model.__doc__ if "__doc__" in vars(model) else None
    return first_line(own) or f"Settings of a `{kind}` component."


def sample_name(kind: str) -> str:
    return SAMPLE_NAMES.get(kind, kind.rsplit("/", 1)[-1])
