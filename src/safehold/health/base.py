"""What every health check shares: its result, its failure, and the component settings it reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from safehold.config.healthchecks import HealthCheck
from safehold.proc import Captured
from safehold.secrets import SecretRef

#: Component name -> that component's options (as in the configuration; secret references unresolved),
#: redirected to where a restore put them.
Targets = Mapping[str, Mapping[str, Any]]
#: A check: returns what it saw on success, raises :class:`CheckFailed` on failure.
CheckFunction = Callable[[HealthCheck, Targets], str]


@dataclass
class HealthResult:
    """One check's outcome: ``message`` says what was seen (never a secret)."""

    name: str
    kind: str
    ok: bool
    message: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(Exception):
    """The check ran and what it saw is not healthy; the message says what (never a secret)."""


def secret(value: Any) -> str | None:
    """Resolve a secret reference (a SecretRef or its dict form); None stays None."""
    if value is None:
        return None
    ref = value if isinstance(value, SecretRef) else SecretRef.model_validate(value)
    return ref.resolve()


def component_options(check: HealthCheck, targets: Targets) -> Mapping[str, Any]:
    assert check.component is not None  # the schema requires it where this is called
    try:
        return targets[check.component]
    except KeyError:
        raise CheckFailed(f"no component {check.component!r} to check") from None


def program_output(res: Captured, what: str) -> str:
    """The program's stdout; CheckFailed when it could not start or timed out."""
    if res.returncode is None:
        raise CheckFailed(f"{what}: {res.stderr}")
    if res.timed_out:
        raise CheckFailed(f"{what}: {res.stderr}")
    return res.stdout.decode(errors="replace")
