"""Helpers for the kinds' :meth:`~safehold.sources.base.Source.preflight` and ``verify``: a collector of
:class:`~safehold.sources.base.Finding` objects that never stops at the first problem, and the checks
several kinds share (a tool with its version, a readable path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safehold import proc
from safehold.errors import SafeholdError
from safehold.sources.base import Finding


class Checks:
    """Findings of one subject (a component), collected in order."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.findings: list[Finding] = []

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def passed(self, check: str, message: str) -> None:
        self.findings.append(Finding(self.subject, check, True, message))

    def problem(
        self, check: str, message: str, hint: str | None = None, lines: list[str] | None = None
    ) -> None:
        self.findings.append(Finding(self.subject, check, False, message, hint, list(lines or [])))

    def guard(self, check: str, fn: Callable[[], Any]) -> None:
        """Run one check; an exception becomes a problem finding (one check must not hide the others)."""
        try:
            fn()
        except SafeholdError as exc:
            self.problem(check, exc.message, exc.hint or None)
        except Exception as exc:
            self.problem(check, f"unexpected {type(exc).__name__}: {exc}")

    def tool(self, candidates: list[str], *, what: str, path: str | None = None) -> str | None:
        """Find a program and report it with its version; None (and a problem) when it is missing."""
        try:
            found = proc.find_tool(candidates, path=path)
        except SafeholdError as exc:
            self.problem("tool", f"{what}: {exc.message}", exc.hint or f"Install {candidates[0]}.")
            return None
        version = proc.tool_version(found)
        self.passed("tool", f"{what}: {found}" + (f" ({version})" if version else ""))
        return found


def unreadable(p: Path) -> str | None:
    """Why ``p`` cannot be backed up, or None."""
    if not p.exists() and not p.is_symlink():
        return "does not exist"
    if p.is_dir() and not os.access(p, os.R_OK | os.X_OK):
        return "folder is not readable"
    if p.is_file() and not os.access(p, os.R_OK):
        return "is not readable"
    return None
