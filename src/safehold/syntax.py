"""Values that cross into another syntax: one rule per syntax, one error for all of them.

safehold writes values it does not control into other languages: passwords from an application's
``.env`` (which the web user can usually write) into a MySQL client option file, names stored in a
repository (which any holder of a passphrase can write) into command lines and libpq connection strings,
API keys into HTTP headers, secrets into the environment of programs it starts. A value that carries the
syntax of the place it goes to becomes *configuration*: a line break in a MySQL password adds
``plugin-dir=`` and ``default-auth=`` lines, and the dump program, run as root, loads a library of the
attacker's choice. So every such value passes through this module on its way out:

* :func:`check` refuses a value that holds a character its :class:`Syntax` cannot carry, with an
  :class:`~safehold.errors.UnsafeValue` that names *where the value came from* (never the value);
* :func:`mysql_option_value` and :func:`libpq_value` encode a checked value for their syntax.

Positional arguments that come from stored names follow ``--`` (or go through an encoding such as
:func:`libpq_value`), so a name starting with ``-`` is never read as an option.

The syntaxes and what they refuse (a character class, so that the rule is visible in one line):

================  ===================  ============================================================
syntax            refused               why
================  ===================  ============================================================
OPTION_FILE       CR, LF, NUL           a MySQL option file is line-based: a line break starts a new
                                        option; NUL ends the value early
CREDENTIAL        CR, LF, NUL           database passwords and user names: PGPASSWORD, REDISCLI_AUTH,
                                        option files and protocol handshakes; no real password holds
                                        them, and one rule for every database keeps it predictable
HTTP_HEADER       all but visible       an API key goes into an ``Authorization`` header: CR/LF would
                  ASCII and space       split it, and httpx encodes header values as ASCII
ENVIRONMENT       NUL                   an environment block is NUL-separated; anything else (even a
                                        multi-line PEM key) is carried intact to the program
ARGUMENT          NUL                   argv strings are NUL-terminated
URL               controls and space    a notification or ping URL from a secret reference: a line
                                        break would split the HTTP request line or an SMTP command
UNIT_FILE         controls              a systemd unit file or a cron.d line is line-based: a line
                                        break would add settings or jobs of its own
================  ===================  ============================================================

:func:`systemd_exec_arg` and :func:`cron_arg` encode a checked argument for a systemd ``ExecStart=``
line and for the command of a cron line.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass

from safehold.errors import UnsafeValue


@dataclass(frozen=True)
class Syntax:
    """A place values go to: its name for messages and the characters it cannot carry."""

    name: str
    refused: re.Pattern[str]


OPTION_FILE = Syntax("a MySQL client option file", re.compile(r"[\r\n\x00]"))
CREDENTIAL = Syntax("a database credential", re.compile(r"[\r\n\x00]"))
HTTP_HEADER = Syntax("an HTTP header", re.compile(r"[^\x20-\x7e]"))
ENVIRONMENT = Syntax("an environment variable", re.compile(r"\x00"))
ARGUMENT = Syntax("a command-line argument", re.compile(r"\x00"))
URL = Syntax("a URL", re.compile(r"[\x00-\x20\x7f]"))
UNIT_FILE = Syntax("a systemd unit or cron line", re.compile(r"[\x00-\x1f\x7f]"))

_NAMES = {"\n": "a line break (LF)", "\r": "a carriage return (CR)", "\x00": "a NUL character"}


def describe_char(ch: str) -> str:
    """A refused character, named without showing the value it is part of."""
    if ch in _NAMES:
        return _NAMES[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F or unicodedata.category(ch) == "Cc":
        return f"a control character (U+{ord(ch):04X})"
    return "a character that is not printable ASCII"


def check(value: str, syntax: Syntax, *, what: str) -> str:
    """``value`` when ``syntax`` can carry it; else raise UnsafeValue naming ``what`` (never the value).

    ``what`` says where the value comes from, e.g. ``"component database: password from
    file:/var/www/app/.env:DB_PASSWORD"``.
    """
    found = syntax.refused.search(value)
    if found is not None:
        raise UnsafeValue(
            f"{what} contains {describe_char(found.group())}, which cannot go into {syntax.name}"
        )
    return value


def mysql_option_value(value: str, *, what: str) -> str:
    """``value`` as a double-quoted MySQL option-file value (``\\`` and ``"`` escaped).

    The MySQL/MariaDB option-file reader strips matching outer quotes and then resolves the escapes
    ``\\\\`` and ``\\"`` (and ``\\n``, ``\\t``, ...: so every backslash must be escaped); ``#`` inside
    quotes is not a comment. Line breaks and NUL cannot be written at all: they are refused.
    """
    check(value, OPTION_FILE, what=what)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def libpq_value(value: str, *, what: str) -> str:
    """``value`` as a single-quoted libpq connection-string value (``\\`` and ``'`` escaped).

    pg_dump and pg_restore read ``--dbname`` as a connection string when it contains ``=`` (a database
    named ``host=/tmp dbname=x`` would redirect them), so a database name always goes there as
    ``dbname='<this>'``.
    """
    check(value, ARGUMENT, what=what)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def systemd_exec_arg(value: str, *, what: str) -> str:
    """``value`` as one word of a systemd ``ExecStart=`` line: double-quoted with ``\\`` and ``"``
    escaped (systemd resolves C escapes inside quotes), ``%`` doubled (unit specifiers such as ``%n``
    and ``%h`` are expanded when the unit loads) and ``$`` doubled (``$VAR`` is expanded when it runs)."""
    check(value, UNIT_FILE, what=what)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def cron_arg(value: str, *, what: str) -> str:
    """``value`` as one word of a cron line's command: quoted for ``/bin/sh``, and ``%`` escaped (cron
    turns an unescaped ``%`` into a line break and feeds what follows to the command's stdin)."""
    check(value, UNIT_FILE, what=what)
    return shlex.quote(value).replace("%", "\\%")
