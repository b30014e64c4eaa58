"""The ``unit`` marker names real modules (a renamed test file must not drop out of the fast subset)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import UNIT_MODULES

ROOT = Path(__file__).resolve().parents[1]


def test_every_unit_module_exists() -> None:
    assert sorted(m for m in UNIT_MODULES if not (ROOT / m).is_file()) == []
