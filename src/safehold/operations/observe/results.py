"""Results of drills and checks, recorded in the repository so that every host (and ``status``) sees when
the backups were last proven, and with what outcome.

A result is one small encrypted file under ``results/`` (:attr:`FileType.RESULT`), named by the SHA-256 of
its bytes like a snapshot, bound to its type by the encryption's associated data. It is written once and
never changed. Recording a result removes the same host's results of the same type and profile beyond
the newest :data:`KEEP`, so the folder stays small without a separate retention.

Results are input from anyone holding a passphrase: they are parsed by a strict model (unknown fields
ignored, bounded strings and lists) and a result that does not parse is skipped with a warning, never
trusted and never fatal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from safehold.backends.base import FileType, Handle
from safehold.engine.format.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.observe.checkrecord import KEEP, RESULT_VERSION

ResultType = Literal["drill", "check"]


class StepResult(BaseModel):
    """One component (or step) of a drill."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=200)
    kind: str = Field(default="", max_length=100)
    ok: bool
    seconds: float = Field(ge=0)
    message: str = Field(default="", max_length=2000)
    #: what to do about a failure that is not the backup's (a drill's scratch server it cannot use)
    hint: str | None = Field(default=None, max_length=2000)
    #: a health check that says nothing about a restore in a sandbox (``message`` says why)
    skipped: bool = False


class Result(BaseModel):
    """A recorded drill or check. ``time`` is when it started (UTC), ``seconds`` how long it took."""

    model_config = ConfigDict(extra="ignore")

    version: int = RESULT_VERSION
    type: ResultType
    time: str
    host: str = Field(max_length=255)
    ok: bool
    seconds: float = Field(ge=0)
    profile: str | None = Field(default=None, max_length=200)
    snapshot_id: str | None = Field(default=None, max_length=64)
    #: the host whose snapshot was drilled or checked (``host`` is where the drill ran)
    snapshot_host: str | None = Field(default=None, max_length=255)
    snapshot_time: str | None = None
    message: str = Field(default="", max_length=2000)
    steps: list[StepResult] = Field(default_factory=list, max_length=1000)
    #: a drill's health checks against the sandbox
    health: list[StepResult] = Field(default_factory=list, max_length=1000)
    details: dict[str, Any] = Field(default_factory=dict)
    #: the file's name in the repository (not stored)
    id: str = Field(default="", exclude=True)

    @field_validator("time", "snapshot_time")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = dt.datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError("a time with its UTC offset")
        return value

    @property
    def started(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.model_dump(mode="json")}


def record(repo: Repository, result: Result) -> str:
    """Write ``result`` into the repository and thin out older ones of its kind; returns its id."""
    name = repo.save_file(
        FileType.RESULT, json.dumps(result.model_dump(mode="json"), sort_keys=True).encode()
    )
    result.id = name
    same = [
        r
        for r in load(repo)
        if r.type == result.type and r.host == result.host and r.profile == result.profile and r.id != name
    ]
    same.sort(key=lambda r: r.started, reverse=True)
    for old in same[KEEP - 1 :]:
        try:
            repo.backend.remove(Handle(FileType.RESULT, old.id))
        except SafeholdError:
            pass  # another host removed it, or the storage refuses: the next recording tries again
    return name


def load(repo: Repository, warn: Callable[[str], None] | None = None) -> list[Result]:
    """Every readable result, oldest first; damaged or malformed ones are reported to ``warn``."""
    out: list[Result] = []
    for fi in repo.backend.list(FileType.RESULT):
        try:
            doc = json.loads(repo.load_file(FileType.RESULT, fi.name))
            r = Result.model_validate(doc)
        except (SafeholdError, ValueError, ValidationError) as exc:
            if warn is not None:
                reason = exc.message if isinstance(exc, SafeholdError) else "malformed"
                warn(f"result {fi.name[:8]} skipped: {reason}")
            continue
        r.id = fi.name
        out.append(r)
    out.sort(key=lambda r: r.started)
    return out


def newest(results: list[Result], type_: ResultType, **match: Any) -> Result | None:
    """The newest result of ``type_`` whose fields equal ``match`` (e.g. ``host=..., profile=...``)."""
    found = [r for r in results if r.type == type_ and all(getattr(r, k) == v for k, v in match.items())]
    return max(found, key=lambda r: r.started) if found else None
