"""The README stays true: its exit-code table is the code's table, its two commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from safehold.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]


def test_exit_code_table_matches_code() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def test_two_commands_are_make_targets_and_ci_calls_the_test_one() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
