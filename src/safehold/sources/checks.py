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
from safehold.secrets import SecretRef
from safehold.secretvalue import parse_dotenv
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


#: The preflight check that names an administrator or the application's own user as the backup's database
#: user. A hygiene problem that ``doctor`` reports; a preflight run right before a backup need not stop on it.
BACKUP_USER_CHECK = "backup-user"


def app_user_origin(password: SecretRef | None, user: str) -> str | None:
    """Where ``user`` is the application's own database user: when the password is read from a dotenv file
    (the app's ``.env``, ``{file = ".../.env", key = "DB_PASSWORD"}``) and a ``*USER*`` key of that file
    (``DB_USERNAME``) names the same user, "DB_USERNAME in /var/www/app/.env"; else None. The file is read
    as text (never run); an unreadable one says nothing."""
    if password is None or not password.file or not password.key:
        return None
    try:
        values = parse_dotenv(Path(password.file).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    prefix = password.key.rsplit("PASSWORD", 1)[0] if "PASSWORD" in password.key else ""
    candidates = [f"{prefix}USERNAME", f"{prefix}USER", *sorted(k for k in values if "USER" in k)]
    for key in dict.fromkeys(candidates):
        if values.get(key) == user:
            return f"{key} in {password.file}"
    return None


def report_backup_user(
    checks: Checks, *, who: str, admin: str | None, app: str | None, fix: list[str]
) -> None:
    """One finding about the database user a backup connects as: a problem when it is an administrator
    (``admin`` says why: "root", "a superuser") or the application's own user (``app``: where that shows),
    with the statements that create a read-only backup user (``fix``)."""
    if admin is None and app is None:
        checks.passed(BACKUP_USER_CHECK, f"{who} is neither an administrator nor the application's own user")
        return
    if admin is not None:
        why = f"the backup connects as {who}, {admin}: a backup needs to read, and this user may change anything"
    else:
        why = (
            f"the backup connects as the application's own database user {who} ({app}): it may change and "
            "drop the data it backs up, and the backup breaks when the application's password changes"
        )
    checks.problem(
        BACKUP_USER_CHECK,
        why,
        "Create a read-only user for backups (as an administrator), then set 'user' and 'password' of the "
        "component to it (the password in a file only root reads, e.g. password = { file = "
        '"/etc/safehold/db-password" }):',
        fix,
    )
