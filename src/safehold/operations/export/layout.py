"""Where each part of a snapshot goes in an export: the original plan's archive layout.

:class:`Planner` maps every component of a snapshot, by its kind (``snapshot.components[name]["kind"]``,
else guessed from the folder's contents), to a list of :class:`Entry` — what to write where — plus the
restore notes for ``RESTORE.md``:

================  =============================================================================
files ``app``     ``app/application.tar.gz`` (the stored tree: paths relative to ``/``)
files ``storage`` ``storage/app_storage.tar.gz``
files ``config``  ``config/`` as plain files; the top ``.env`` as ``config/env.production`` (0600)
other files       ``<name>/<name>.tar.gz``
mysql             ``database/full_dump.sql.gz``, ``schema_only.sql.gz``, ``table_statistics.txt``
                  (``database/<db>/...`` for several databases); ``tables/*.tsv`` in
                  ``external-services/database-exports/``
postgresql        ``database/<db>.pgcustom``, ``database/globals.sql.gz``, statistics
sqlite            ``database/<file>`` and its statistics
redis             ``system/redis/`` (``dump.rdb``, ``keys.dump``, ``keyspace.json``)
system            ``system/<collector>/<path>`` as plain files (symlinks kept), ``system/manifest.json``
system-info       ``system/info/``
git               ``git/``
saas/retell       ``external-services/retell/``;  saas/calcom: ``external-services/calcom/``
command, unknown  ``<name>/`` as plain files
================  =============================================================================

Several components of one group (two databases, two git repositories...) each get a sub-folder named
after the component (``database/<name>/...``). A component whose paths would collide with another's is
placed under ``components/<name>/`` instead. A snapshot without components (``safehold backup PATH``)
becomes ``files/files.tar.gz``.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.format.tree import DIR, FILE, SYMLINK, Node
from safehold.engine.format.treewalk import load_tree
from safehold.errors import SafeholdError

TREE_TAR = "tree-tar"  # node: a folder; its children are the archive's top level
GZIP = "gzip"  # node: a file, written gzip-compressed
PLAIN = "file"
LINK = "symlink"
FOLDER = "dir"
SPECIAL = "special"
BYTES = "bytes"

ROOT_FILES = ("metadata.json", "RESTORE.md", "checksums.txt")
SECRET = 0o600

_GROUPS = {
    "mysql": "database",
    "postgresql": "database",
    "sqlite": "database",
    "redis": "redis",
    "system": "system",
    "system-info": "system-info",
    "git": "git",
    "saas/retell": "retell",
    "saas/calcom": "calcom",
}
_BASES = {
    "database": "database",
    "redis": "system/redis",
    "system": "system",
    "system-info": "system/info",
    "git": "git",
    "retell": "external-services/retell",
    "calcom": "external-services/calcom",
}
_SSH_KEYS = ("id_rsa", "id_ed25519", "id_ecdsa", "id_dsa")
_ARCHIVES = {"app": "app/application.tar.gz", "storage": "storage/app_storage.tar.gz"}


@dataclass
class Entry:
    dest: str
    what: str
    node: Node | None = None
    data: bytes = b""
    mode: int | None = None
    #: a MariaDB dump whose sandbox first line is left out (:mod:`safehold.sources.mysql.sandbox`)
    mysql_dump: bool = False


@dataclass
class Part:
    """One component's share of the export."""

    component: str
    kind: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def secret_reason(dest: str) -> str | None:
    """Why a file of the export holds a secret, or None (by name: .env files, private keys, redis)."""
    base = posixpath.basename(dest)
    if base in ("env.production",) or (base.startswith(".env") and not base.endswith(".example")):
        return "application secrets (.env)"
    if base.startswith("privkey") or base.endswith((".key", "private_key.json")) or base in _SSH_KEYS:
        return "private key"
    if base in ("dump.rdb", "keys.dump"):
        return "Redis data (sessions, tokens, cache)"
    return None


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class Planner:
    """Plans the export of ``snap`` (trees are read from ``repo``; nothing is written)."""

    def __init__(self, repo: Repository, snap: Snapshot) -> None:
        self.repo = repo
        self.snap = snap
        self.root = Node(name=b"", type=DIR, subtree=bytes.fromhex(snap.tree))
        self.warnings: list[str] = []

    # ---- tree access -----------------------------------------------------------------------------
    def children(self, node: Node) -> list[Node]:
        if node.type != DIR or node.subtree is None:
            return []
        return load_tree(self.repo, node.subtree)

    def find(self, node: Node, rel: str) -> Node | None:
        for part in [p for p in rel.split("/") if p]:
            match = [c for c in self.children(node) if c.display_name == part]
            if not match:
                return None
            node = match[0]
        return node

    def plain(self, node: Node, dest: str, part: Part) -> None:
        """``node`` (recursively) as plain files, folders and symlinks at ``dest``."""
        if node.type == DIR:
            part.entries.append(Entry(dest, FOLDER, node))
            for child in self.children(node):
                self.plain(child, join(dest, child.display_name), part)
        elif node.type == FILE:
            reason = secret_reason(dest)
            part.entries.append(Entry(dest, PLAIN, node, mode=SECRET if reason else None))
            if reason:
                part.secrets.append(f"{dest}: {reason}")
        elif node.type == SYMLINK:
            part.entries.append(Entry(dest, LINK, node))
        else:
            part.entries.append(Entry(dest, SPECIAL, node))

    def gz(self, node: Node, dest: str, part: Part, *, mysql_dump: bool = False) -> None:
        part.entries.append(Entry(dest, GZIP, node, mode=SECRET, mysql_dump=mysql_dump))

    # ---- the whole snapshot ------------------------------------------------------------------------
    def plan(self) -> tuple[list[Part], dict[str, Node]]:
        """Every component's part, and the snapshot's own root files (metadata.json, RESTORE.md)."""
        top = {n.display_name: n for n in self.children(self.root)}
        root_files: dict[str, Node] = {
            k: top.pop(k) for k in ("metadata.json", "RESTORE.md") if k in top and top[k].type == FILE
        }
        comps: dict[str, Any] = self.snap.components
        parts: list[Part] = []
        if not comps:
            part = Part("files", "files")
            part.entries.append(Entry("files/files.tar.gz", TREE_TAR, self.root, mode=SECRET))
            paths = ", ".join(self.snap.paths) or "/"
            part.notes.append(
                f"`files/files.tar.gz`: the backed-up paths ({paths}), stored relative to `/`. "
                "Restore in place: `tar --xattrs --xattrs-include='*' -xzpf files/files.tar.gz -C /` "
                "(as root, to keep owners), or extract into an empty folder to pick files."
            )
            return [part], root_files
        kinds = {name: self.kind_of(name, top.get(name)) for name in top if name in comps}
        groups: dict[str, int] = {}
        for kind in kinds.values():
            groups[_GROUPS.get(kind, "")] = groups.get(_GROUPS.get(kind, ""), 0) + 1
        claimed = _Claims(ROOT_FILES)
        for name in sorted(top):
            node = top[name]
            if name not in comps:
                part = Part(name, "(not a component)")
                self.plain(node, join("snapshot-root", name), part)
                part.notes.append(f"`snapshot-root/{name}`: stored at the snapshot's root, copied as is.")
            else:
                kind = kinds[name]
                several = groups.get(_GROUPS.get(kind, ""), 0) > 1
                part = self.component(name, kind, node, several, "")
                if not claimed.fits(part):
                    part = self.component(name, kind, node, several, join("components", name))
                    if not claimed.fits(part):
                        raise SafeholdError(
                            f"component {name}: its files collide with each other or another component's"
                        )
            claimed.take(part)
            parts.append(part)
        for name, info in sorted(comps.items()):
            if name not in top and isinstance(info, dict) and info.get("status") == "ok":
                self.warnings.append(f"component {name} has no folder in the snapshot: not exported")
        return parts, root_files

    def kind_of(self, name: str, node: Node | None) -> str:
        info = self.snap.components.get(name)
        kind = info.get("kind") if isinstance(info, dict) else None
        if isinstance(kind, str) and kind:
            return kind
        names = {c.display_name: c for c in self.children(node)} if node is not None else {}
        subs = [c for c in names.values() if c.type == DIR]
        if any(self.find(s, "full_dump.sql") for s in subs):
            return "mysql"
        if any(self.find(s, "dump.pgcustom") for s in subs):
            return "postgresql"
        for marker, kind in (("dump.rdb", "redis"), ("head.txt", "git"), ("info.json", "system-info")):
            if marker in names:
                return kind
        if "manifest.json" in names:
            return "system"
        if "agents" in names and "index.json" in names:
            return "saas/retell"
        if "event-types" in names and "index.json" in names:
            return "saas/calcom"
        return "files" if name in ("app", "storage", "config") else "unknown"

    # ---- one component -----------------------------------------------------------------------------
    def component(self, name: str, kind: str, node: Node, several: bool, top: str) -> Part:
        part = Part(name, kind)
        meta = self.snap.components.get(name, {}).get("metadata", {}) or {}
        group = _GROUPS.get(kind)
        base = join(top, _BASES[group], name if several else "") if group else join(top, name)
        if kind == "files":
            self._files(name, node, meta, part, top)
        elif kind == "mysql":
            self._mysql(name, node, base, part, top, several)
        elif kind == "postgresql":
            self._postgresql(node, base, part)
        else:
            for child in self.children(node):
                self.plain(child, join(base, child.display_name), part)
            part.notes.append(_NOTES.get(kind, _NOTES["unknown"]).format(base=base, name=name))
        return part

    def _files(self, name: str, node: Node, meta: dict[str, Any], part: Part, top: str) -> None:
        paths = [str(p) for p in meta.get("paths", []) if isinstance(p, str)]
        where = ", ".join(f"`{p}`" for p in paths) or "their original paths"
        if name == "config":
            self._config(node, paths, part, top)
            return
        dest = join(top, _ARCHIVES.get(name, f"{name}/{name}.tar.gz"))
        part.entries.append(Entry(dest, TREE_TAR, node, mode=SECRET))
        part.notes.append(
            f"`{dest}`: {where}, with modes, owners, times, symlinks and hard links, stored relative to "
            f"`/`. Restore in place: `tar --xattrs --xattrs-include='*' -xzpf {dest} -C /` (as root, "
            "to keep owners); or extract into an empty folder first and move what you need."
        )

    def _config(self, node: Node, paths: list[str], part: Part, top: str) -> None:
        rels = [os.path.normpath(p).lstrip("/") for p in paths]
        found = [(r, n) for r in rels if (n := self.find(node, r)) is not None]
        if found:
            base = posixpath.commonpath([r for r, _ in found]) if len(found) > 1 else found[0][0]
            if len(found) == 1 and found[0][1].type != DIR:
                base = posixpath.dirname(base)
        else:
            base, cur = "", node
            while len(kids := self.children(cur)) == 1 and kids[0].type == DIR:
                cur = kids[0]
                base = join(base, cur.display_name)
            found = [(join(base, c.display_name), c) for c in self.children(cur)]
        dest_root = join(top, "config")
        renames = {".env": "env.production", ".env.example": "env.example"}
        for rel, n in found:
            sub = posixpath.relpath(rel, base) if base else rel
            sub = "" if sub == "." else renames.get(sub, sub)
            if n.type == DIR:
                for child in self.children(n):
                    cname = child.display_name
                    self.plain(
                        child, join(dest_root, sub, renames.get(cname, cname) if not sub else cname), part
                    )
            else:
                self.plain(n, join(dest_root, sub), part)
        origin = "/" + base
        env = posixpath.join(origin, ".env")
        part.notes.append(
            f"`{dest_root}/`: configuration files from `{origin}` as plain files "
            f"(`env.production` is `{env}`, `env.example` is `.env.example`). "
            f"Copy them back: `install -m 600 {dest_root}/env.production {env}` and "
            f"`cp -a` the rest to `{origin}`."
        )

    def _mysql(self, name: str, node: Node, base: str, part: Part, top: str, several: bool) -> None:
        kids = self.children(node)
        dbs = [k for k in kids if k.type == DIR]
        multi = len(dbs) > 1
        exports = join(top, "external-services/database-exports", name if several else "")
        for k in kids:
            if k.type != DIR:
                self.plain(k, join(base, k.display_name), part)
        for db in dbs:
            dname = db.display_name
            dp = join(base, dname if multi else "")
            for f in self.children(db):
                fname = f.display_name
                if fname in ("full_dump.sql", "schema_only.sql") and f.type == FILE:
                    self.gz(f, join(dp, fname + ".gz"), part, mysql_dump=True)
                elif fname == "tables" and f.type == DIR:
                    self.plain(f, join(exports, dname if multi else ""), part)
                else:
                    self.plain(f, join(dp, fname), part)
            part.notes.append(
                f"`{dp}/full_dump.sql.gz`: MySQL/MariaDB database `{dname}` (data, routines, triggers, "
                f"events). Restore: `mysql -e 'CREATE DATABASE {dname} CHARACTER SET utf8mb4'`, then "
                f"`gunzip < {dp}/full_dump.sql.gz | mysql {dname}` (MySQL's client or MariaDB's; with "
                f"MariaDB's, `mariadb --sandbox {dname}` also refuses client commands in the file). The "
                "first line MariaDB's dump tool writes (`/*M!999999\\- enable the sandbox mode */`, which "
                "MySQL's client rejects) is left out of the export; the repository keeps the dump as "
                f"written. `schema_only.sql.gz` is the schema alone; compare row counts and sizes with "
                f"`{dp}/table_statistics.txt`."
            )
        if any(e.dest.startswith(exports + "/") for e in part.entries):
            part.notes.append(
                f"`{exports}/`: chosen tables as tab-separated text, readable without a database."
            )

    def _postgresql(self, node: Node, base: str, part: Part) -> None:
        kids = self.children(node)
        dbs = [k for k in kids if k.type == DIR]
        multi = len(dbs) > 1
        for k in kids:
            if k.type == DIR:
                continue
            if k.display_name == "globals.sql" and k.type == FILE:
                self.gz(k, join(base, "globals.sql.gz"), part)
                part.notes.append(
                    f"`{base}/globals.sql.gz`: roles and tablespaces; load first: "
                    f"`gunzip < {base}/globals.sql.gz | psql -d postgres`."
                )
            else:
                self.plain(k, join(base, k.display_name), part)
        for db in dbs:
            dname = db.display_name
            for f in self.children(db):
                if f.display_name == "dump.pgcustom" and f.type == FILE:
                    dest = join(base, dname + ".pgcustom")
                    part.entries.append(Entry(dest, PLAIN, f, mode=SECRET))
                    part.notes.append(
                        f"`{dest}`: PostgreSQL database `{dname}` in pg_dump's custom format. Restore: "
                        f"`createdb {dname} && pg_restore --no-owner -d {dname} {dest}` (or "
                        f"`pg_restore -f {dname}.sql {dest}` for plain SQL)."
                    )
                else:
                    self.plain(f, join(base, dname if multi else "", f.display_name), part)


class _Claims:
    """Paths already taken in the export: a part fits when none of its paths collides."""

    def __init__(self, reserved: tuple[str, ...]) -> None:
        self.files: set[str] = set(reserved)
        self.dirs: set[str] = set()

    @staticmethod
    def _parents(dest: str) -> list[str]:
        parts = dest.split("/")
        return ["/".join(parts[:i]) for i in range(1, len(parts))]

    def fits(self, part: Part) -> bool:
        """No file of ``part`` is named twice, is a parent of another entry (of this part or one taken
        before: a symlink that is a parent would be written through), or collides with a path taken."""
        files: set[str] = set()
        dirs: set[str] = set()
        for e in part.entries:
            if e.what == FOLDER:
                dirs.add(e.dest)
            elif e.dest in files:
                return False
            else:
                files.add(e.dest)
            dirs.update(self._parents(e.dest))
        return not (files & dirs or files & self.files or files & self.dirs or dirs & self.files)

    def take(self, part: Part) -> None:
        for e in part.entries:
            self.dirs.update(self._parents(e.dest))
            (self.dirs if e.what == FOLDER else self.files).add(e.dest)


_NOTES = {
    "redis": "`{base}/dump.rdb`: a point-in-time Redis RDB. Restore: stop redis-server, copy it to the "
    "server's `dir`/`dbfilename` (usually `/var/lib/redis/dump.rdb`, owner redis), start it again. "
    "`keys.dump` (msgpack of DUMP payloads) is for safehold's own per-key restore.",
    "system": "`{base}/<collector>/`: service configuration, each file under its path relative to `/` "
    "(`{base}/nginx/etc/nginx` is `/etc/nginx`); `manifest.json` lists single files with mode and owner. "
    "Restore: `cp -a {base}/<collector>/. /`, then reload the service (`nginx -t && systemctl reload "
    "nginx`, `supervisorctl reread && supervisorctl update`, `systemctl daemon-reload`).",
    "system-info": "`{base}/`: what was installed. Reinstall: `apt-get update && xargs apt-get install -y "
    "< {base}/manual-packages.txt`; `npm-global.txt` and `composer-global.txt` list global packages.",
    "git": "`{base}/`: the repository's state (HEAD, status, last commits, branches, remotes without "
    "credentials). With `repo.bundle`: `git clone {base}/repo.bundle DIR`, then set the remotes from "
    "`remotes.txt`.",
    "saas/retell": "`{base}/`: Retell AI agents, LLMs, conversation flows and phone numbers, one JSON "
    "file per object (`index.json` lists them). Recreate through the Retell API (POST the saved agent "
    "and LLM configs) and point the phone numbers at the new agents.",
    "saas/calcom": "`{base}/`: Cal.com event types, schedules, teams, memberships and webhooks, one JSON "
    "file per object. Recreate them through the Cal.com API v2 or its settings pages.",
    "sqlite": "`{base}/`: a consistent copy of the SQLite database; stop the application and copy it "
    "back to its path (remove any stale `-wal`/`-shm` file beside it).",
    "command": "`{base}/`: the output of the component's command, as stored; feed it to the matching "
    "restore program (for example `psql < file`).",
    "unknown": "`{base}/`: the component's files as stored.",
}
