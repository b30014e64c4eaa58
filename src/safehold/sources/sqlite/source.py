"""The ``sqlite`` source (see the package docstring)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.errors import RestoreRefused, SourceError
from safehold.fsutil import AtomicFile, private_dir
from safehold.sources import dbstats
from safehold.sources.base import ComponentReader, ComponentWriter, RestoreReport, Source, SourceContext


class SQLiteOptions(BaseModel):
    """Settings of a ``sqlite`` component."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="Path of the SQLite database file.", examples=["/var/www/app/database/app.sqlite"]
    )
    busy_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to wait for a write lock held by the application.",
        examples=[30],
    )


def inspect_database(path: Path) -> dict[str, Any]:
    """Integrity check, page size/count and rows per table of the database file at ``path``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        quoted = {n: '"' + n.replace('"', '""') + '"' for n in names}
        rows = {n: int(conn.execute(f"SELECT count(*) FROM {q}").fetchone()[0]) for n, q in quoted.items()}  # noqa: S608
        return {
            "integrity_check": "ok" if check == ["ok"] else "; ".join(check[:20]),
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
            "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
            "tables": {n: {"rows": c} for n, c in rows.items()},
        }
    finally:
        conn.close()


class SQLiteSource(Source):
    """Consistent copies of a live SQLite database through the online backup API."""

    kind: ClassVar[str] = "sqlite"
    Options: ClassVar[type[BaseModel]] = SQLiteOptions
    options: SQLiteOptions

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        src_path = Path(self.options.path)
        if not src_path.is_file():
            raise SourceError(f"SQLite database {src_path} not found", hint="Check 'path' in the config.")
        start = time.monotonic()
        with private_dir("safehold-sqlite-") as tmp:
            copy = tmp / "copy.sqlite3"
            try:
                src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=self.options.busy_timeout)
                try:
                    dst = sqlite3.connect(copy)
                    try:
                        src.backup(dst)  # one step: a consistent image under one read transaction
                    finally:
                        dst.close()
                finally:
                    src.close()
            except sqlite3.Error as exc:
                raise SourceError(f"cannot copy SQLite database {src_path}: {exc}") from None
            info = inspect_database(copy)
            if info["integrity_check"] != "ok":
                raise SourceError(f"copy of {src_path} fails the integrity check: {info['integrity_check']}")
            with open(copy, "rb") as fh:
                stats = out.add_stream(src_path.name, fh)
        st = src_path.stat()
        doc = {**info, "file": src_path.name, "original_path": str(src_path), "mode": st.st_mode & 0o7777}
        doc.update({"bytes": stats.size, "sha256": stats.sha256})
        out.add_bytes("table_statistics.json", json.dumps(doc, indent=2, sort_keys=True).encode())
        title = f"SQLite database {src_path} (copied {time.strftime('%Y-%m-%d %H:%M:%S %Z')})"
        out.add_bytes("table_statistics.txt", dbstats.format_statistics(title, info["tables"], []).encode())
        took = time.monotonic() - start
        msg = f"copied {src_path}: {stats.size} bytes, {len(info['tables'])} tables in {took:.1f} s"
        out.log(msg)
        ctx.log(msg)
        return {
            "file": src_path.name,
            "bytes": stats.size,
            "sha256": stats.sha256,
            "sqlite_version": sqlite3.sqlite_version,
            "table_statistics": info["tables"],
        }

    def restore(self, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        doc = json.loads(snap.read_bytes("table_statistics.json"))
        target = Path(ctx.options.get("path") or doc["original_path"])
        report = RestoreReport(component=self.name)
        if target.exists() and not ctx.force:
            raise RestoreRefused(
                f"{target} exists", hint="Restore to another path, or pass --force to replace it."
            )
        report.actions.append(f"{'replace' if target.exists() else 'create'} {target} ({doc['bytes']} bytes)")
        if ctx.dry_run:
            return report
        with AtomicFile(target, mode=int(doc.get("mode", 0o644)) & 0o7777, parents=True) as tmp:
            for chunk in snap.open_stream(doc["file"]):
                tmp.write(chunk)
            info = inspect_database(tmp.path)
            problems = (
                [] if info["integrity_check"] == "ok" else [f"integrity check: {info['integrity_check']}"]
            )
            problems += dbstats.compare(doc["tables"], {t: s["rows"] for t, s in info["tables"].items()})
            if problems:
                raise SourceError(f"restored copy of {doc['file']} is wrong: " + "; ".join(problems[:10]))
            for suffix in ("-wal", "-shm", "-journal"):  # would be applied to the new file: remove first
                stale = target.with_name(target.name + suffix)
                if stale.exists():
                    stale.unlink()
                    report.actions.append(f"removed stale {stale.name}")
            tmp.commit()
        report.details = {"path": str(target), "tables": info["tables"]}
        return report
