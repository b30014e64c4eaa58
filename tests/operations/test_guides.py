"""The restore guides' first step is an install command that works without a package index: fetch the
repository's ``bootstrap/``, check it, install from it (the package is on no index)."""

from __future__ import annotations

import re

from safehold.operations.backup.components import ComponentResult
from safehold.operations.backup.guide import restore_guide

INSTALL = "python3 -m venv /opt/safehold && /opt/safehold/bin/pip install --no-index --find-links bootstrap safehold"


def _first_block(text: str, heading: str) -> list[str]:
    section = text.split(heading, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_restore_md_starts_with_fetching_bootstrap_and_installing_from_it() -> None:
    results = [ComponentResult(name="app", kind="files", status="ok", duration=0.1)]
    text = restore_guide(
        repo_location="s3://bucket/backups/",
        profile="quick",
        results=results,
        component_options={"app": {"paths": ["/var/www/app"]}},
    ).decode()
    lines = _first_block(text, "## Whole server (bare metal)")
    assert lines[:3] == [
        "aws s3 cp --recursive s3://bucket/backups/bootstrap bootstrap",
        "(cd bootstrap && sha256sum -c SHA256SUMS)",
        INSTALL,
    ]
    assert "pip install safehold" not in text
