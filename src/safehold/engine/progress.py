"""The one progress/event interface operations report through; the CLI renders it (bars, JSON, nothing)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, phase: str, total_files: int | None = None, total_bytes: int | None = None) -> None:
        """A phase begins (``scan``, ``backup``, ``restore``, ``check``...); totals when known."""

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Work done since the last call."""

    def warn(self, message: str) -> None:
        """Something the user should see that does not stop the operation."""

    def finish(self) -> None:
        """The current phase ended."""


class NullProgress:
    """Reports nothing; collects warnings so callers can inspect them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def start(self, phase: str, total_files: int | None = None, total_bytes: int | None = None) -> None:
        return None

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        return None

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def finish(self) -> None:
        return None
