"""The ``sqlite`` source (see the package docstring)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.engine.fs.safedir import folder_of, folder_warnings
from safehold.errors import RestoreRefused, SourceError
from safehold.fsutil import AtomicFile, private_dir
from safehold.sources import dbstats
from safehold.sources.base import (
    Finding,
    Redirect,
    RestorePlan,
    RestoreReport,
    Sandbox,
    Source,
    SourceContext,
    VerifyReport,
)
from safehold.sources.checks import Checks, unreadable
from safehold.sources.component import ComponentReader, ComponentWriter


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
        tables: dict[str, dict[str, Any]] = {n: {"rows": c} for n, c in rows.items()}
        try:  # pages per table and per index (the dbstat table, when SQLite was built with it)
            pages = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
            owners = conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'").fetchall()
        except sqlite3.Error:
            pages, owners = {}, []
        if pages:
            for n, st in tables.items():
                st["table_bytes"] = int(pages.get(n, 0))
                st["index_bytes"] = sum(int(pages.get(i, 0)) for i, t in owners if t == n)
        return {
            "integrity_check": "ok" if check == ["ok"] else "; ".join(check[:20]),
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
            "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
            "tables": tables,
        }
    finally:
        conn.close()


class SQLiteRestoreOptions(BaseModel):
    """What a restore of a ``sqlite`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="Restore to this file instead of the original path.")
    target_root: str | None = Field(default=None, description="Restore below this folder instead of '/'.")


class SQLiteSource(Source):
    """Consistent copies of a live SQLite database through the online backup API."""

    kind: ClassVar[str] = "sqlite"
    Options: ClassVar[type[BaseModel]] = SQLiteOptions
    RestoreOptions: ClassVar[type[BaseModel]] = SQLiteRestoreOptions
    restore_rank: ClassVar[int] = 50
    export_folder: ClassVar[str | None] = "database"
    export_note: ClassVar[str] = (
        "`{base}/`: a consistent copy of the SQLite database; stop the application and copy it "
        "back to its path (remove any stale `-wal`/`-shm` file beside it)."
    )
    #: the dumps of a database kind hold all of the application's data
    export_warning: ClassVar[str | None] = (
        "the database dumps: all of the application's data (users, password hashes, tokens)"
    )
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

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        path = self.options.path
        why = unreadable(Path(path))
        if why:
            checks.problem("path", f"{path} {why}", "Fix 'path' in the component.")
            return checks.findings
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            checks.problem("open", f"{path} does not open as a SQLite database: {exc}")
        else:
            checks.passed(
                "open", f"{path} opens read-only ({tables} tables; SQLite {sqlite3.sqlite_version})"
            )
        return checks.findings

    def secrets_note(self) -> str | None:
        return "the application's data (personal data, password hashes)"

    # restore
    def restore_hints(self) -> list[str]:
        return [
            f"# somewhere else first: safehold restore {self.name} --snapshot SNAP --set {self.name}.path=/tmp/check.db"
        ]

    def redirected_settings(self, settings: dict[str, Any], where: Redirect) -> dict[str, Any]:
        path = settings.get("path")
        if where.target_root and isinstance(path, str):
            return {**settings, "path": os.path.join(where.target_root, path.lstrip("/"))}
        return settings

    def safety_source(self, ctx: SourceContext) -> Source | None:
        ro: SQLiteRestoreOptions = self.restore_options(ctx.options)
        moved = bool(ro.path or ro.target_root)
        return self if ctx.force and not moved and os.path.lexists(self.options.path) else None

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        ro: SQLiteRestoreOptions = self.restore_options(ctx.options)
        doc = json.loads(snap.read_bytes("table_statistics.json"))
        stored_name = doc.get("file")
        if not isinstance(stored_name, str) or not snap.exists(stored_name) or "/" in stored_name:
            raise SourceError(f"the snapshot's {self.name} folder holds no usable SQLite copy")
        if ro.path:
            target = Path(ro.path)
        elif ro.target_root:
            target = Path(ro.target_root) / os.path.normpath(self.options.path).lstrip("/")
        else:
            target = Path(self.options.path)
        if target.exists() and not ctx.force:
            raise RestoreRefused(
                f"{target} exists", hint="Restore to another path, or pass --force to replace it."
            )
        plan = RestorePlan(component=self.name, options=ro)
        plan.actions.append(f"{'replace' if target.exists() else 'create'} {target} ({doc['bytes']} bytes)")
        plan.warnings += folder_warnings(target, None if ro.path else ro.target_root)
        plan.steps.append((target, doc))
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings))
        ((target, doc),) = plan.steps
        ro: SQLiteRestoreOptions = plan.options
        mode = int(doc.get("mode", 0o644)) & 0o7777
        # the folder is reached from the target root (or /) without following another user's symlink
        with (
            folder_of(target, None if ro.path else ro.target_root) as dfd,
            AtomicFile(target.name, mode=mode, dir_fd=dfd) as tmp,
        ):
            for chunk in snap.open_stream(doc["file"]):
                tmp.write(chunk)
            info = self._check_copy(tmp.path, doc)
            for suffix in ("-wal", "-shm", "-journal"):  # would be applied to the new file: remove first
                try:
                    os.unlink(target.name + suffix, dir_fd=dfd)  # the name itself, never followed
                except FileNotFoundError:
                    continue
                report.actions.append(f"removed stale {target.name + suffix}")
            tmp.commit()
        report.details = {"path": str(target), "tables": info["tables"]}
        return report

    @staticmethod
    def _check_copy(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
        """Integrity check and row counts of a restored copy against the backup's statistics."""
        info = inspect_database(path)
        problems = [] if info["integrity_check"] == "ok" else [f"integrity check: {info['integrity_check']}"]
        problems += dbstats.compare(doc["tables"], {t: s["rows"] for t, s in info["tables"].items()})
        if problems:
            raise SourceError(f"restored copy of {doc['file']} is wrong: " + "; ".join(problems[:10]))
        return info

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Restore the copy below the sandbox, run the integrity check and compare row counts."""
        started = time.monotonic()
        doc = json.loads(snap.read_bytes("table_statistics.json"))
        target = sandbox.root / self.name / "copy.sqlite3"
        checks = Checks(self.name)

        def run() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with AtomicFile(target, mode=0o600) as tmp:
                for chunk in snap.open_stream(doc["file"]):
                    tmp.write(chunk)
                info = self._check_copy(tmp.path, doc)
                tmp.commit()
            checks.passed(
                "restore",
                f"{doc['file']}: integrity check ok, row counts of {len(info['tables'])} tables match",
            )

        checks.guard("restore", run)
        if checks.ok:
            sandbox.loaded({**self.options.model_dump(exclude_none=True), "path": str(target)})
        if not sandbox.keep:
            target.unlink(missing_ok=True)
        return VerifyReport(
            self.name, checks.ok, checks.findings, {"path": str(target)}, time.monotonic() - started
        )
