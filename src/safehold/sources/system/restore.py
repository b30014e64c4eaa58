"""Restore of the ``system`` source: :func:`plan_restore` changes nothing, :func:`apply` executes exactly
its plan. Nothing is written by path: every folder from the target root down to an item is opened one name
at a time (:func:`~safehold.engine.fs.safedir.open_folder`), and single files and symlinks are created
under a new name in that folder and renamed into place (see the package docstring)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
from pathlib import Path
from typing import Any

from safehold.engine.format.tree import path_problem
from safehold.engine.fs.safedir import in_the_way_above, open_folder, step_down
from safehold.errors import SourceError
from safehold.fsutil import AtomicFile
from safehold.sources.base import RestorePlan, RestoreReport, SourceContext
from safehold.sources.component import ComponentReader
from safehold.sources.system.options import COLLECTOR_NAME, SystemOptions, SystemRestoreOptions

#: The component folder's record of its items (written by the backup, read here).
MANIFEST = "manifest.json"
NEXT_STEPS: dict[str, str] = {
    "nginx": "nginx -t && systemctl reload nginx",
    "php_fpm": "systemctl restart 'php*-fpm'",
    "supervisor": "supervisorctl reread && supervisorctl update",
    "redis": "systemctl restart redis-server",
    "systemd": "systemctl daemon-reload",
    "letsencrypt": "certbot renew --dry-run",
}


def plan_restore(
    name: str, options: SystemOptions, ro: SystemRestoreOptions, snap: ComponentReader, ctx: SourceContext
) -> RestorePlan:
    """Put every collected item back below the root (or ``target_root``); reads the snapshot and what is
    there, changes nothing."""
    plan = RestorePlan(component=name, options=ro)
    if not snap.exists(MANIFEST):
        raise SourceError(f"component {name}: the snapshot holds no {MANIFEST}")
    manifest = _checked_manifest(snap.read_bytes(MANIFEST), name)
    base = Path(os.path.abspath(ro.target_root or options.root))
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
                plan.warnings += snap.in_the_way(f"{cname}/{item['path']}", dest, root=base, force=ctx.force)
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


def apply(name: str, plan: RestorePlan, snap: ComponentReader, ctx: SourceContext) -> RestoreReport:
    """Every item written below the target root through folders reached from it one name at a time
    (:func:`~safehold.engine.fs.safedir.open_folder`: only root's own symlinks are followed on the
    way; another user's symlink or a file where a folder goes is refused, or with ``--force``
    replaced), files and symlinks created under a new name and renamed into place."""
    report = RestoreReport(name, list(plan.actions), list(plan.warnings), dict(plan.details))
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
                f"component {name}: cannot restore {dest}: {exc.strerror or exc}",
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
        if (
            not COLLECTOR_NAME.match(cname)
            or not isinstance(entry, dict)
            or not isinstance(entry.get("items"), list)
        ):
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
