"""The ``system`` source (see the package docstring)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import stat
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from safehold.engine.format.tree import path_problem
from safehold.engine.fs.safedir import in_the_way_above, open_folder, step_down
from safehold.errors import SourceError
from safehold.fsutil import AtomicFile
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from safehold.sources.checks import Checks, unreadable
from safehold.sources.component import ComponentReader, ComponentWriter
from safehold.sources.sandboxpath import Where
from safehold.sources.system.restored import restored_checks
from safehold.sources.verify import Sandbox, VerifyReport, verify_restored_tree

MANIFEST = "manifest.json"
MAX_LISTED = 20000
_GLOB_CHARS = re.compile(r"[*?\[]")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

NEXT_STEPS: dict[str, str] = {
    "nginx": "nginx -t && systemctl reload nginx",
    "php_fpm": "systemctl restart 'php*-fpm'",
    "supervisor": "supervisorctl reread && supervisorctl update",
    "redis": "systemctl restart redis-server",
    "systemd": "systemctl daemon-reload",
    "letsencrypt": "certbot renew --dry-run",
}
#: Collectors whose files usually hold secrets (private keys, requirepass, environment= lines).
SECRET_COLLECTORS = ("letsencrypt", "redis", "supervisor")


def _patterns(values: list[str]) -> list[str]:
    for v in values:
        parts = v.split("/")
        if not v or v.startswith("/") or ".." in parts or "" in parts:
            raise ValueError(f"{v!r}: use a path relative to root, without '..'")
    return values


class SystemOptions(BaseModel):
    """Settings of a ``system`` component. Every path is a glob relative to ``root``."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(
        default="/", description="The file system root the paths are relative to.", examples=["/"]
    )
    nginx: list[str] = Field(
        default=["etc/nginx"], description="nginx configuration.", examples=[["etc/nginx"]]
    )
    php_fpm: list[str] = Field(
        default=["etc/php/*/fpm"], description="PHP-FPM configuration of every PHP version.", examples=[[]]
    )
    supervisor: list[str] = Field(
        default=["etc/supervisor"], description="supervisor configuration.", examples=[["etc/supervisor"]]
    )
    cron: list[str] = Field(
        default=["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.*"],
        description="Users' crontabs (restored with owner and mode) and the system cron folders.",
        examples=[["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.*"]],
    )
    redis: list[str] = Field(
        default=["etc/redis"], description="Redis configuration.", examples=[["etc/redis"]]
    )
    systemd: list[str] = Field(
        default=["etc/systemd/system"],
        description="Local systemd units and their enablement symlinks.",
        examples=[["etc/systemd/system"]],
    )
    letsencrypt: list[str] = Field(
        default=[
            "etc/letsencrypt/live",
            "etc/letsencrypt/archive",
            "etc/letsencrypt/renewal",
            "etc/letsencrypt/accounts",
            "etc/letsencrypt/renewal-hooks",
        ],
        description="Let's Encrypt certificates, keys, renewal settings and ACME account (symlinks kept).",
        examples=[["etc/letsencrypt/live", "etc/letsencrypt/archive", "etc/letsencrypt/renewal"]],
    )
    certificate_min_days: int = Field(
        default=14,
        ge=0,
        description="Drills: a restored certificate (Let's Encrypt live/*/cert.pem, nginx's ssl_certificate) "
        "that expires within this many days is a finding; 0: only an expired one.",
        examples=[14],
    )
    extra: dict[str, list[str]] = Field(
        default_factory=dict,
        description="More collectors: name -> glob patterns relative to root.",
        examples=[{"php_cli": ["etc/php/*/cli"], "logrotate": ["etc/logrotate.d"]}],
    )

    @field_validator("nginx", "php_fpm", "supervisor", "cron", "redis", "systemd", "letsencrypt")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, pats in value.items():
            if not _NAME.match(name) or name in BUILTIN:
                raise ValueError(f"{name!r}: use a new lowercase name (letters, digits, '_', '-')")
            _patterns(pats)
        return value

    def collectors(self) -> dict[str, list[str]]:
        """Every collector with its patterns, built-ins first, disabled (empty) ones left out."""
        found = {name: list(getattr(self, name)) for name in BUILTIN}
        found.update(self.extra)
        return {k: v for k, v in found.items() if v}


BUILTIN = ("nginx", "php_fpm", "supervisor", "cron", "redis", "systemd", "letsencrypt")


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


class SystemRestoreOptions(BaseModel):
    """What a restore of a ``system`` component may be told."""

    model_config = ConfigDict(extra="forbid")

    target_root: str | None = Field(
        default=None, description="Restore below this folder instead of the root."
    )
    collectors: list[str] | None = Field(default=None, description="Restore only these collectors.")


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

    def verify(self, snap: ComponentReader, sandbox: Sandbox, ctx: SourceContext) -> VerifyReport:
        """Drills: the folder restored below the sandbox, compared with the snapshot entry by entry
        (types, modes, links, sizes, times, owners as root, every byte)."""
        return verify_restored_tree(self, snap, sandbox, ctx)

    def check_restored(self, root: Path, where: Where, ctx: SourceContext) -> list[Finding]:
        """``nginx -t`` of the restored nginx configuration (safe as root) and the expiry dates of the
        certificates it names and of Let's Encrypt's ``live/*/cert.pem`` (:mod:`.restored`)."""
        return restored_checks(self, root, where)

    def plan_restore(self, snap: ComponentReader, ctx: SourceContext) -> RestorePlan:
        """Put every collected item back below the root (or ``target_root``)."""
        ro: SystemRestoreOptions = self.restore_options(ctx.options)
        plan = RestorePlan(component=self.name, options=ro)
        if not snap.exists(MANIFEST):
            raise SourceError(f"component {self.name}: the snapshot holds no {MANIFEST}")
        manifest = _checked_manifest(snap.read_bytes(MANIFEST), self.name)
        base = Path(os.path.abspath(ro.target_root or self.options.root))
        create: list[str] = []
        overwrite: list[str] = []
        next_steps: list[str] = []
        for cname, entry in manifest["collectors"].items():
            if ro.collectors is not None and cname not in ro.collectors:
                continue
            if entry["items"] and cname in NEXT_STEPS:
                next_steps.append(NEXT_STEPS[cname])
            for item in entry["items"]:
                dest = base / item["path"]
                names = [""] if item["type"] != "dir" else ["", *item["entries"]]
                for n in names:
                    p = dest / n if n else dest
                    shown = f"{p}/" if n.endswith("/") else str(p)
                    if os.path.lexists(p) and not n.endswith("/"):
                        overwrite.append(shown)
                    elif not os.path.lexists(p):
                        create.append(shown)
                plan.steps.append((cname, item, dest))
                # symlinks where folders go: never followed, refused (--force: replaced)
                if item["type"] == "dir":
                    plan.warnings += snap.in_the_way(
                        f"{cname}/{item['path']}", dest, root=base, force=ctx.force
                    )
                else:
                    problem = in_the_way_above(os.fsencode(dest.parent), os.fsencode(base), ctx.force)
                    plan.warnings += [problem] if problem else []
        plan.actions += [f"create {p}" for p in create] + [f"overwrite {p}" for p in overwrite]
        plan.details.update(
            {
                "target_root": str(base),
                "created": len(create),
                "overwritten": len(overwrite),
                "next_steps": next_steps,
            }
        )
        return plan

    def apply(self, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
        """Every item written below the target root through folders reached from it one name at a time
        (:func:`~safehold.engine.fs.safedir.open_folder`: only root's own symlinks are followed on the
        way; another user's symlink or a file where a folder goes is refused, or with ``--force``
        replaced), files and symlinks created under a new name and renamed into place."""
        report = RestoreReport(self.name, list(plan.actions), list(plan.warnings), dict(plan.details))
        warned_owner = False
        base = Path(plan.details["target_root"])
        for cname, item, dest in plan.steps:
            stored = f"{cname}/{item['path']}"
            try:
                if item["type"] == "dir":
                    overwrite = "always" if ctx.force else "if-changed"
                    snap.restore_tree(stored, dest, overwrite=overwrite, root=base)
                elif item["type"] == "symlink":
                    _put_symlink(base, dest, item["target"], replace=ctx.force)
                else:
                    owned = _put_file(snap, stored, base, dest, item, replace=ctx.force)
                    if not owned and not warned_owner:
                        report.warnings.append("not running as root: owners of restored files were not set")
                        warned_owner = True
            except OSError as exc:
                raise SourceError(
                    f"component {self.name}: cannot restore {dest}: {exc.strerror or exc}",
                    hint="Check what is at that path; nothing was written through a symlink.",
                ) from None
        return report


def _checked_manifest(raw: bytes, component: str) -> dict[str, Any]:
    """``manifest.json`` as stored, refused (SourceError) unless every collector name and item is well
    formed: paths pass the path-safety rule (:func:`~safehold.engine.format.tree.path_problem`), so none of them
    can name something outside the restore root. The manifest comes from the repository: untrusted."""

    def bad(what: str) -> SourceError:
        return SourceError(
            f"component {component}: {MANIFEST} in the snapshot {what}",
            hint="The snapshot is damaged or was written by a hostile writer; nothing was restored from it.",
        )

    try:
        manifest = json.loads(raw)
        collectors = manifest["collectors"]
        assert isinstance(collectors, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise bad("is malformed") from None
    for cname, entry in collectors.items():
        if not _NAME.match(cname) or not isinstance(entry, dict) or not isinstance(entry.get("items"), list):
            raise bad(f"has a malformed collector {cname!r}")
        for item in entry["items"]:
            kind = item.get("type") if isinstance(item, dict) else None
            path = item.get("path") if isinstance(item, dict) else None
            if kind not in ("dir", "file", "symlink") or not isinstance(path, str) or path_problem(path):
                raise bad(f"has an item {path!r} of collector {cname} that is not a relative path")
            names = item.get("entries", [])
            if kind == "dir" and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise bad(f"has a malformed listing of {path!r}")
            if kind == "dir" and any(path_problem(n) for n in names):
                raise bad(f"lists a name below {path!r} that is not a relative path")
            if kind == "symlink" and not (isinstance(item.get("target"), str) and "\0" not in item["target"]):
                raise bad(f"has a malformed symlink {path!r}")
            numbers = ("mode", "uid", "gid", "mtime_ns")
            parent = item.get("parent")
            if kind == "file" and not (
                all(type(item.get(k)) is int for k in numbers)
                and (
                    parent is None
                    or (isinstance(parent, dict) and all(type(parent.get(k)) is int for k in numbers))
                )
            ):
                raise bad(f"has malformed metadata for {path!r}")
    return dict(manifest)


def _put_symlink(base: Path, dest: Path, target: str, *, replace: bool) -> None:
    """Make ``dest`` a symlink to ``target``: created under a new name in ``dest``'s folder (reached from
    ``base`` by the rule of :func:`open_folder`) and renamed over what is there (a folder stays)."""
    dfd = open_folder(os.fsencode(dest.parent), os.fsencode(base), replace=replace)
    try:
        try:
            if os.readlink(dest.name, dir_fd=dfd) == target:
                return
        except OSError:
            pass
        tmp = f".{dest.name}.safehold-tmp-{secrets.token_hex(6)}"
        os.symlink(target, tmp, dir_fd=dfd)
        try:
            os.replace(tmp, dest.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError:
            os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)


def _uid_gid(rec: dict[str, Any]) -> tuple[int, int]:
    """The owner for this machine: by name when the user/group exists here, else the recorded ids."""
    uid, gid = int(rec["uid"]), int(rec["gid"])
    try:
        if rec.get("user"):
            uid = pwd.getpwnam(rec["user"]).pw_uid
    except KeyError:
        pass
    try:
        if rec.get("group"):
            gid = grp.getgrnam(rec["group"]).gr_gid
    except KeyError:
        pass
    return uid, gid


def _folder_of(base: Path, dest: Path, parent: dict[str, Any] | None, *, replace: bool) -> int:
    """A descriptor of ``dest``'s folder, reached from ``base`` (:func:`open_folder`); when it is missing
    and its metadata was recorded (``parent``) it is made with that mode and (as root) owner."""
    b, folder = os.fsencode(base), os.fsencode(dest.parent)
    if not parent or folder == b:
        return open_folder(folder, b, replace=replace)
    gfd = open_folder(os.path.dirname(folder), b, replace=replace)
    try:
        name = os.path.basename(folder)
        try:
            os.stat(name, dir_fd=gfd, follow_symlinks=False)
            fresh = False
        except FileNotFoundError:
            fresh = True
        fd = step_down(gfd, folder, name, create=True, replace=replace, mode=0o700)
    finally:
        os.close(gfd)
    if fresh:
        if os.geteuid() == 0:
            os.fchown(fd, *_uid_gid(parent))
        os.fchmod(fd, parent["mode"])
    return fd


def _put_file(
    snap: ComponentReader, stored: str, base: Path, dest: Path, item: dict[str, Any], *, replace: bool
) -> bool:
    """Write one file with mode, mtime and (as root) owner, every call on a descriptor; returns whether
    owners were set."""
    root = os.geteuid() == 0
    parent = item.get("parent")
    dfd = _folder_of(base, dest, parent, replace=replace)
    try:
        with AtomicFile(dest.name, mode=item["mode"], dir_fd=dfd) as f:
            for chunk in snap.open_stream(stored):
                f.write(chunk)
            if root:
                os.fchown(f.fileno(), *_uid_gid(item))
            os.utime(f.fileno(), ns=(item["mtime_ns"], item["mtime_ns"]))
            f.commit()
        if parent and "mtime_ns" in parent:
            # writing into the folder moved its mtime: put the recorded one back (after every file)
            os.utime(dfd, ns=(parent["mtime_ns"], parent["mtime_ns"]))
    finally:
        os.close(dfd)
    return root
