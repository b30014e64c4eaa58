"""The ``system`` source (see the package docstring)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from safehold.errors import SourceError
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks, unreadable
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.sandboxpath import Where
from safehold.sources.system import restore
from safehold.sources.system.options import SystemOptions, SystemRestoreOptions
from safehold.sources.system.restore import MANIFEST
from safehold.sources.system.restored import restored_checks
from safehold.sources.verify import Sandbox, VerifyReport, verify_restored_tree

MAX_LISTED = 20000
_GLOB_CHARS = re.compile(r"[*?\[]")

#: Collectors whose files usually hold secrets (private keys, requirepass, environment= lines).
SECRET_COLLECTORS = ("letsencrypt", "redis", "supervisor")


def _owner(uid: int, gid: int) -> dict[str, Any]:
    try:
        user: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = None
    try:
        group: str | None = grp.getgrgid(gid).gr_name
    except KeyError:
        group = None
    return {"uid": uid, "gid": gid, "user": user, "group": group}


def _stat_record(st: os.stat_result) -> dict[str, Any]:
    return {"mode": stat.S_IMODE(st.st_mode), **_owner(st.st_uid, st.st_gid), "mtime_ns": st.st_mtime_ns}


def _listing(top: Path) -> tuple[list[str], int]:
    """Relative paths of everything below ``top`` (directories end in '/'), capped, and the file count."""
    names: list[str] = []
    files = 0
    for dirpath, dirnames, filenames in os.walk(top):
        rel = Path(dirpath).relative_to(top)
        for d in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                filenames.append(d)  # a symlink to a folder is a leaf: os.walk does not follow it
            elif len(names) < MAX_LISTED:
                names.append(f"{(rel / d).as_posix()}/")
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for f in sorted(filenames):
            files += 1
            if len(names) < MAX_LISTED:
                names.append((rel / f).as_posix())
    return names, files


class SystemSource(Source):
    """Service configuration trees and crontabs, restorable in place or below another root."""

    kind: ClassVar[str] = "system"
    Options: ClassVar[type[BaseModel]] = SystemOptions
    RestoreOptions: ClassVar[type[BaseModel]] = SystemRestoreOptions
    restore_rank: ClassVar[int] = 20
    export_folder: ClassVar[str | None] = "system"
    export_note: ClassVar[str] = (
        "`{base}/<collector>/`: service configuration, each file under its path relative to `/` "
        "(`{base}/nginx/etc/nginx` is `/etc/nginx`); `manifest.json` lists single files with mode and owner. "
        "Restore: `cp -a {base}/<collector>/. /`, then reload the service (`nginx -t && systemctl reload "
        "nginx`, `supervisorctl reread && supervisorctl update`, `systemctl daemon-reload`)."
    )
    options: SystemOptions

    # ---------------------------------------------------------------------------------------- backup
    def _matches(self, root: Path, pattern: str) -> list[Path]:
        if not _GLOB_CHARS.search(pattern):
            p = root / pattern
            return [p] if os.path.lexists(p) else []
        return sorted(root.glob(pattern))

    def backup(self, out: ComponentWriter, ctx: SourceContext) -> dict[str, Any]:
        """Store every collector's matches and ``manifest.json``; missing paths are recorded, not failed."""
        root = Path(self.options.root)
        if not root.is_dir():
            raise SourceError(f"component {self.name}: root {root} is not a folder")
        manifest: dict[str, Any] = {"format": 1, "root": str(root), "collectors": {}}
        summary: dict[str, Any] = {}
        missing: list[str] = []
        for cname, patterns in self.options.collectors().items():
            items: list[dict[str, Any]] = []
            entry: dict[str, Any] = {"patterns": patterns, "items": items, "missing": []}
            taken: list[str] = []
            for pattern in patterns:
                matches = self._matches(root, pattern)
                if not matches:
                    entry["missing"].append(pattern)
                    missing.append(f"{cname}:{pattern}")
                for path in matches:
                    rel = path.relative_to(root).as_posix()
                    if any(rel == t or rel.startswith(t + "/") for t in taken):
                        continue
                    taken.append(rel)
                    item = self._collect(out, cname, rel, path)
                    if item is not None:
                        items.append(item)
            manifest["collectors"][cname] = entry
            summary[cname] = {
                "items": len(items),
                "files": sum(i.get("files", 1) for i in items if i["type"] != "symlink"),
                "missing": entry["missing"],
            }
        out.add_bytes(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode(), mode=0o600)
        if missing:
            ctx.log(f"{self.name}: not present (recorded, not an error): {', '.join(missing)}")
        return {
            "root": str(root),
            "collectors": summary,
            "missing": missing,
            "holds_secrets": [c for c in SECRET_COLLECTORS if summary.get(c, {}).get("items")],
        }

    def _collect(self, out: ComponentWriter, cname: str, rel: str, path: Path) -> dict[str, Any] | None:
        stored = f"{cname}/{rel}"
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                return {"path": rel, "type": "symlink", "target": os.readlink(path)}
            if stat.S_ISDIR(st.st_mode):
                entries, files = _listing(path)
                out.add_tree(stored, path)
                return {"path": rel, "type": "dir", "entries": entries, "files": files}
            if stat.S_ISREG(st.st_mode):
                with path.open("rb") as f:
                    out.add_stream(stored, f, mode=stat.S_IMODE(st.st_mode))
                parent = _stat_record(os.stat(path.parent))
                return {"path": rel, "type": "file", **_stat_record(st), "parent": parent}
        except OSError as exc:
            raise SourceError(
                f"component {self.name}: cannot read {path}: {exc.strerror or exc}",
                hint="Run the backup as root, or remove the path from the collector.",
            ) from None
        out.log(f"{self.name}: skipped {path}: not a file, folder or symlink")
        return None

    def preflight(self, ctx: SourceContext) -> list[Finding]:
        checks = Checks(self.name)
        why = unreadable(Path(self.options.root))
        if why:
            checks.problem("root", f"root {self.options.root} {why}")
        else:
            checks.passed("root", f"root {self.options.root} is readable")
        return checks.findings

    def secrets_note(self) -> str | None:
        if self.options.letsencrypt:
            return "TLS private keys (letsencrypt) and service configuration"
        return None

    # --------------------------------------------------------------------------------------- restore
    def safety_source(self, ctx: SourceContext) -> Source | None:
        ro: SystemRestoreOptions = self.restore_options(ctx.options)
        return None if ro.target_root else self

    def sandbox_path(self, path: str) -> str | None:
        """``verify`` restores the stored folder below the sandbox: ``<collector>/<path below root>``, for
        the first collector one of whose patterns matches ``path`` or a folder above it."""
        root = os.path.normpath(self.options.root)
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return None
        rel = os.path.relpath(path, root)
        parts = rel.split("/")
        for cname, patterns in self.options.collectors().items():
            for pattern in patterns:
                want = pattern.split("/")
                if len(parts) >= len(want) and all(
                    fnmatchcase(a, b) for a, b in zip(parts, want, strict=False)
                ):
                    return f"{cname}/{rel}"
        return None

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Put every collected item back below the root (or ``target_root``): :mod:`.restore`."""
        return restore.plan_restore(self.name, self.options, self.restore_options(ctx.options), snap, ctx)

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        return restore.apply(self.name, plan, snap, ctx)

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: the folder restored below the sandbox, compared with the snapshot entry by entry
        (types, modes, links, sizes, times, owners as root, every byte)."""
        return verify_restored_tree(self, snap, sandbox, ctx)

    def check_restored(self, root: Path, where: Where, ctx: SourceContext) -> list[Finding]:
        """``nginx -t`` of the restored nginx configuration (safe as root) and the expiry dates of the
        certificates it names and of Let's Encrypt's ``live/*/cert.pem`` (:mod:`.restored`)."""
        return restored_checks(self, root, where)
