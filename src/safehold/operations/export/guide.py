"""The ``RESTORE.md`` and ``metadata.json`` of an export, for a person without safehold.

The guide says first that the export is *not* encrypted and which of its files hold secrets, then how to
verify it (``sha256sum -c checksums.txt``), where each component went and how to restore each part with
ordinary tools. The snapshot's own ``RESTORE.md`` (when the backup stored one) follows at the end.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from safehold import __version__
from safehold.engine.format.snapshot import Snapshot
from safehold.operations.backup.bootstrap import install_commands, python_version
from safehold.sources.export import Part


def generated_metadata(snap: Snapshot, parts: list[Part]) -> bytes:
    """``metadata.json`` for a snapshot that has none of its own: the snapshot record and the layout."""
    doc: dict[str, Any] = {
        "snapshot": snap.to_json(),
        "export": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "safehold_version": __version__,
            "layout": {p.component: _tops(p) for p in parts},
        },
    }
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()


def _tops(part: Part) -> list[str]:
    seen: list[str] = []
    for e in part.entries:
        depth = 2 if e.dest.startswith(("external-services/", "system/", "components/")) else 1
        top = "/".join(e.dest.split("/")[:depth])
        if top not in seen:
            seen.append(top)
    return seen


def _secret_line(s: str) -> str:
    path, _, reason = s.partition(": ")
    return f"- `{path}`: {reason}" if reason else f"- `{s}`"


def restore_guide(
    snap: Snapshot,
    parts: list[Part],
    secrets: list[str],
    own_guide: bytes | None,
    warnings: list[str],
    repo_location: str,
) -> bytes:
    """The export's ``RESTORE.md``; ``repo_location`` is the repository it was exported from."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    profile = f", profile {snap.profile}" if snap.profile else ""
    out = [
        "# Restoring from this safehold export",
        "",
        f"Snapshot `{snap.short_id}` of host `{snap.hostname}`, taken {snap.time}{profile}; exported "
        f"{when} by safehold {__version__}. These are plain files and archives: everything here can be "
        "restored with tar, gzip, mysql/psql and cp. `metadata.json` describes the snapshot.",
        "",
        "## WARNING: this export is NOT encrypted",
        "",
        "The safehold repository encrypts everything; this copy of it does not. Keep it on encrypted "
        "storage, readable by root only (`chmod -R go-rwx`), never in a web root, and delete it when it "
        "has served. Files that hold secrets:",
        "",
    ]
    out += [_secret_line(s) for s in secrets] or ["- (none recognised by name; the data itself may still be)"]
    out += [f"- {w}" for w in dict.fromkeys(p.warning for p in parts if p.warning)]
    out += [
        "",
        "## Verify it first",
        "",
        "    sha256sum -c checksums.txt        # run inside this folder; every line must say OK",
        "",
        "## What is where",
        "",
        "| Path | Component | Kind |",
        "| --- | --- | --- |",
    ]
    for p in parts:
        for top in _tops(p):
            out.append(f"| `{top}` | {p.component} | {p.kind} |")
    out += ["", "## How to restore each part", ""]
    for p in parts:
        out += [f"### {p.component} ({p.kind})", ""]
        out += [f"- {n}" for n in p.notes] or ["- Copy the files back where they belong."]
        out.append("")
    missing = {
        name: info
        for name, info in sorted(snap.components.items())
        if isinstance(info, dict) and info.get("status") != "ok"
    }
    if missing or warnings:
        out += ["## Not in this export", ""]
        for name, info in missing.items():
            out.append(
                f"- component `{name}` ({info.get('kind', '?')}): {info.get('status')}: {info.get('error') or ''}"
            )
        out += [f"- {w}" for w in warnings]
        out.append("")
    out += [
        "## safehold on a new host",
        "",
        "To use safehold itself (component restores, the snapshot's guide below), install it from the",
        f"repository's `bootstrap/` folder, with no network (wheels for Python {python_version()}):",
        "",
        *[f"    {line}" for line in install_commands(repo_location)],
        "",
    ]
    text = "\n".join(out).rstrip("\n") + "\n"
    if own_guide:
        text += "\n---\n\n## The snapshot's own restore guide (for safehold)\n\n"
        return text.encode() + own_guide
    return text.encode()
