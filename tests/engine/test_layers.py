"""Imports go one way: cli -> operations -> engine/sources -> backends (STYLE.md, 'layers you can see')."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "safehold"
RANK = {"cli": 4, "operations": 3, "engine": 2, "sources": 2, "config": 2, "notify": 2, "backends": 1}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "safehold" and parts[1] in RANK else None


def test_no_upward_imports() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        me = _layer(".".join(rel.parts))
        if me is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for m in mods:
                other = _layer(m)
                if other is not None and RANK[other] > RANK[me]:
                    problems.append(f"{rel}: imports {m} ({me} -> {other})")
    assert problems == []
