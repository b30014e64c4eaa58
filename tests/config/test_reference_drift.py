"""The README's configuration reference is exactly what the schema generates."""

from __future__ import annotations

from pathlib import Path

from safehold.config.docgen import REGENERATE, readme_section, reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_schema() -> None:
    current = readme_section(README.read_text(encoding="utf-8"))
    assert current == reference(), (
        f"The README's configuration reference is out of date with the schema. Regenerate it with: {REGENERATE}"
    )


def test_reference_sits_before_exit_codes() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("## Configuration reference") < text.index("<!-- config-reference:start -->")
    assert text.index("<!-- config-reference:end -->") < text.index("## Exit codes")
