"""Shared pieces of the SaaS sources: JSON files, field diffs, and the generic plan/apply walk.

:func:`plan_and_apply` is the one restore loop both services use. For each :class:`ObjectKind` in
dependency order and each saved object of that kind it computes the desired state (saved object, read-only
fields stripped, references remapped through the :class:`IdMap`), reads the live object and decides:

* ``unchanged`` — live equals desired on every saved top-level field;
* ``update`` — the differing fields as dotted paths (``response_engine.llm_id``, ``states[0].name``);
* ``create`` — the live object is gone (404) and the kind can be created: a new id, recorded in the map
  (unless a live object that an earlier restore re-created from it is found: that one is adopted, so
  running a restore twice does not duplicate objects);
* ``missing`` — gone, and the documented API cannot re-create it (a note says what to do).

With ``dry_run`` nothing is written; objects that would be created get a placeholder id
(``<new llm for llm_x>``) so that the objects referring to them show up as updates in the plan too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from safehold import syntax
from safehold.errors import SourceError
from safehold.secrets import SecretRef, resolve_secret
from safehold.sources.component import ComponentReader

Action = Literal["unchanged", "update", "create", "missing"]
Obj = dict[str, Any]


class SaasRestoreOptions(BaseModel):
    """What a restore of a SaaS component may be told (``--set NAME.base_url=...``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        default=None, description="Restore into the account behind this API base URL."
    )
    api_key: SecretRef | None = Field(default=None, description="Where that account's API key comes from.")


class SaasOptions(BaseModel):
    """Settings every SaaS source takes (the API key comes only from env, a file or a command)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretRef = Field(
        description="Where the API key comes from: an environment variable, a file or a command.",
        examples=[{"env": "RETELL_API_KEY"}, {"command": "pass show calcom/api-key"}],
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds to wait for one HTTP response before retrying.",
        examples=[30.0],
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a request after a connection error, 408, 409, 429 or 5xx response.",
        examples=[2, 5],
    )
    allow_empty: bool = Field(
        default=False,
        description="Accept an export with no objects at all (otherwise it fails: a key for the wrong "
        "workspace looks exactly like that).",
        examples=[False],
    )
    #: Each service's options give their own default and description.
    base_url: str = Field(description="The service's API base URL.")


def dump_json(obj: Any) -> bytes:
    """The canonical bytes of an exported object: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def file_name(key: str | int) -> str:
    """A safe file name for an object id (percent-encodes anything but ``A-Za-z0-9+@-_.=``)."""
    name = quote(str(key), safe="+@-_.=")
    if name in ("", ".", ".."):
        name = name.replace(".", "%2E") or "%00"
    return name + ".json"


def strip(obj: Obj, fields: Iterable[str]) -> Obj:
    """A copy of ``obj`` without the top-level ``fields``."""
    drop = set(fields)
    return {k: v for k, v in obj.items() if k not in drop}


def changed_fields(desired: Any, live: Any, path: str = "", *, top: bool = True) -> list[str]:
    """Dotted paths where ``live`` differs from ``desired``.

    At the top level only the desired object's keys count (fields the service added since the export
    cannot be unset through a PATCH and would show as drift forever); below it, both sides' keys count.
    Lists of equal length are compared item by item (``states[0].name``), others as a whole.
    """
    if isinstance(desired, dict) and isinstance(live, dict):
        keys = sorted(desired) if top else sorted(set(desired) | set(live))
        out: list[str] = []
        for k in keys:
            sub = f"{path}.{k}" if path else str(k)
            if k not in live or k not in desired:
                out.append(sub)
            else:
                out.extend(changed_fields(desired[k], live[k], sub, top=False))
        return out
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        out = []
        for i, (a, b) in enumerate(zip(desired, live, strict=True)):
            out.extend(changed_fields(a, b, f"{path}[{i}]", top=False))
        return out
    if desired != live or type(desired) is not type(live):
        return [path or "(whole object)"]
    return []


def read_objects(snap: ComponentReader, folder: str) -> list[tuple[str, Obj]]:
    """Every ``*.json`` object in ``folder`` of the snapshot (sorted by file name), decoded."""
    if not snap.exists(folder):
        return []
    out = []
    for name in snap.listdir(folder):
        path = f"{folder}/{name}"
        if not name.endswith(".json"):
            continue
        try:
            obj = json.loads(snap.read_bytes(path))
        except (ValueError, IsADirectoryError, FileNotFoundError):
            continue
        if isinstance(obj, dict):
            out.append((path, obj))
    return out


@dataclass
class PlanEntry:
    """One object's fate in a restore plan."""

    kind: str
    key: str
    action: Action
    fields: list[str] = field(default_factory=list)
    label: str = ""
    new_key: str | None = None
    note: str = ""

    def line(self) -> str:
        """One human-readable line, e.g. ``agent oBeD (Jarvis): update agent_name, voice_id``."""
        who = f"{self.kind} {self.key}" + (f" ({self.label})" if self.label else "")
        text = f"{who}: {self.action}"
        if self.fields:
            text += " " + ", ".join(self.fields)
        if self.new_key:
            text += f" -> new id {self.new_key}"
        if self.note:
            text += f" [{self.note}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "fields": list(self.fields),
            "label": self.label,
            "new_key": self.new_key,
            "note": self.note,
        }


@dataclass
class IdMap:
    """Old id -> new id of re-created objects, per kind (plus the new object's version, if any)."""

    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, kind: str, old: Any) -> Any:
        """The new id of ``old``, or ``old`` itself when it was not re-created."""
        if old is None:
            return None
        return self.ids.get(kind, {}).get(str(old), old)

    def version(self, kind: str, old: Any) -> tuple[bool, Any]:
        """(True, version of the re-created object) when ``old`` was re-created, else (False, None)."""
        new = self.ids.get(kind, {}).get(str(old))
        if new is None:
            return False, None
        return True, self.versions.get(kind, {}).get(new)

    def add(self, kind: str, old: Any, new: Any, version: Any = None) -> None:
        self.ids.setdefault(kind, {})[str(old)] = new
        self.versions.setdefault(kind, {})[new] = version


@dataclass
class ObjectKind:
    """How one kind of object is read, compared, created and updated at restore."""

    kind: str
    folder: str
    key_of: Callable[[Obj], str]
    readonly: frozenset[str]
    get: Callable[[str], Obj | None]
    update: Callable[[str, Obj], Any]
    create: Callable[[Obj], Obj] | None = None
    new_key_of: Callable[[Obj], Any] | None = None
    remap: Callable[[Obj, IdMap], Obj] = lambda obj, _ids: obj
    label_of: Callable[[Obj], str] = lambda _obj: ""
    missing_note: str = "cannot be re-created through the API; re-create it by hand, then restore again"
    compare_ignore: frozenset[str] = frozenset()
    candidates: Callable[[], list[Obj]] | None = None
    same: Callable[[Obj, Obj], bool] | None = None


def _adopt(spec: ObjectKind, desired: Obj, taken: set[str], cache: dict[str, list[Obj]]) -> Obj | None:
    """A live object that a previous restore already re-created from ``desired`` (so a second run
    does not create a duplicate): same content (or ``spec.same``), not itself a saved or adopted object."""
    if spec.candidates is None:
        return None
    if spec.kind not in cache:
        cache[spec.kind] = spec.candidates()
    want = strip(desired, spec.compare_ignore)
    for live in cache[spec.kind]:
        key = str((spec.new_key_of or spec.key_of)(live))
        if key in taken:
            continue
        if spec.same is not None:
            if spec.same(desired, live):
                return live
        elif not changed_fields(want, strip(live, spec.readonly | spec.compare_ignore)):
            return live
    return None


def plan_and_apply(
    kinds: list[ObjectKind],
    saved: dict[str, list[tuple[str, Obj]]],
    *,
    dry_run: bool,
    log: Callable[[str], None],
    expected: list[PlanEntry] | None = None,
) -> tuple[list[PlanEntry], IdMap]:
    """Plan (and unless ``dry_run`` apply) the restore of ``saved`` (folder -> objects) in order.

    With ``expected`` (the plan shown before), every change is checked against it before it is made: an
    object whose live state would now need another action or other fields (fields are compared until the
    first object is created: after that, references to it get values no plan could show) raises
    SourceError (the account changed since the plan was made), so what is applied is the plan shown."""
    ids = IdMap()
    entries: list[PlanEntry] = []
    cache: dict[str, list[Obj]] = {}
    planned = {(e.kind, e.key): e for e in expected} if expected is not None else None

    def confirm(entry: PlanEntry) -> None:
        if planned is None:
            return
        was = planned.get((entry.kind, entry.key))
        # Once this apply has created an object, the fields that refer to it (its new id and version) are
        # known only now: then the action must match, the fields need not.
        fields_known = not any(ids.ids.values())
        if (
            was is None
            or was.action != entry.action
            or (fields_known and sorted(was.fields) != sorted(entry.fields))
        ):
            shown = f"{was.action} {', '.join(was.fields)}".strip() if was else "not in the plan"
            raise SourceError(
                f"{entry.kind} {entry.key} changed since the plan was made (planned: {shown}; now: "
                f"{entry.action} {', '.join(entry.fields)})".replace(" )", ")"),
                hint="Show the plan again (--dry-run) and restore from the new plan.",
            )

    for spec in kinds:
        objects = saved.get(spec.folder, [])
        taken = {str(spec.key_of(obj)) for _path, obj in objects}
        for _path, obj in objects:
            try:
                entries.append(
                    _restore_one(spec, obj, ids, taken, cache, dry_run=dry_run, log=log, confirm=confirm)
                )
            except SourceError as exc:
                done = sum(1 for e in entries if e.action in ("update", "create"))
                raise SourceError(
                    f"{exc.message} (while restoring {spec.kind} {spec.key_of(obj)}; "
                    f"{done if not dry_run else 0} change(s) were applied before it)",
                    hint=exc.hint + " A restore can be run again: it continues where this one stopped.",
                ) from None
    return entries, ids


def _restore_one(
    spec: ObjectKind,
    obj: Obj,
    ids: IdMap,
    taken: set[str],
    cache: dict[str, list[Obj]],
    *,
    dry_run: bool,
    log: Callable[[str], None],
    confirm: Callable[[PlanEntry], None] = lambda _entry: None,
) -> PlanEntry:
    key = str(spec.key_of(obj))
    desired = strip(spec.remap(obj, ids), spec.readonly)
    entry = PlanEntry(spec.kind, key, "unchanged", label=spec.label_of(obj))
    new_key_of = spec.new_key_of or spec.key_of
    target = key
    live = spec.get(key)
    if live is None and spec.create is not None:
        live = _adopt(spec, desired, taken, cache)
        if live is not None:
            target = str(new_key_of(live))
            taken.add(target)
            ids.add(spec.kind, key, new_key_of(live), live.get("version"))
            entry.new_key, entry.note = target, "re-created by an earlier restore"
    if live is None:
        if spec.create is None:
            entry.action, entry.note = "missing", spec.missing_note
            return entry
        entry.action = "create"
        if dry_run:
            ids.add(spec.kind, key, f"<new {spec.kind} for {key}>")
            return entry
        confirm(entry)
        created = spec.create(desired)
        new_key = new_key_of(created) if isinstance(created, dict) else None
        if new_key is None:
            raise SourceError(
                f"creating {spec.kind} {key} returned no id",
                hint="The API answered in an unexpected shape.",
            )
        entry.new_key = str(new_key)
        taken.add(str(new_key))
        ids.add(spec.kind, key, new_key, created.get("version"))
        log(f"created {spec.kind} {key} as {new_key}")
        return entry
    current = strip(live, spec.readonly | spec.compare_ignore)
    entry.fields = changed_fields(strip(desired, spec.compare_ignore), current)
    if entry.fields:
        entry.action = "update"
        if not dry_run:
            confirm(entry)
            spec.update(target, desired)
            log(f"updated {spec.kind} {target}: {', '.join(entry.fields)}")
    return entry


def summarize(entries: list[PlanEntry]) -> dict[str, int]:
    """Counts of each action in a plan."""
    counts = {"unchanged": 0, "update": 0, "create": 0, "missing": 0}
    for e in entries:
        counts[e.action] += 1
    return counts


def api_key_for(component: str, ref: SecretRef | dict[str, Any]) -> str:
    """The API key of ``ref``, refused (UnsafeValue naming the component and the reference, never the
    key) unless it is printable ASCII: it goes into an HTTP header, where CR/LF would split it."""
    key = resolve_secret(ref, syntax.HTTP_HEADER, owner=f"component {component}: api_key")
    assert key is not None
    return key
