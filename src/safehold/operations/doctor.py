"""``safehold doctor``: can every part of the configuration actually be backed up right now?

:func:`run_doctor` returns one :class:`Finding` per check, ok or not, and never stops at the first
problem (STYLE.md, "collect findings"). It only reads: no dump is taken, nothing is written anywhere.

Checks:

* **repository** — reachable, and the passphrase opens it (through the ``open_repo`` callable the CLI
  passes, so passphrase lookup stays in one place);
* **secrets** — every secret reference in the configuration resolves (the reference is named, its value
  never shown);
* per component, by kind: ``mysql`` connect, databases exist, privileges of the backup user (the missing
  ones and the exact GRANT statements, :func:`safehold.sources.mysql.check_mysql_privileges`), dump and
  client tools with versions; ``postgresql`` connect to every database, every user table readable (the
  GRANT to run otherwise), pg_dump not older than the server; ``redis`` PING and redis-cli; ``files``
  paths exist and are readable; ``sqlite`` the file opens read-only; ``command`` the programs are found;
  ``git`` a repository; ``system`` the root exists; ``system-info`` dpkg and apt-mark present;
  ``saas/*`` a side-effect-free GET with the API key (a small list endpoint).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from safehold import proc
from safehold.config.schema import Config
from safehold.engine.repository import Repository
from safehold.errors import SafeholdError
from safehold.operations.permissions import Targets, check_permissions
from safehold.secrets import SecretRef

#: A side-effect-free GET per SaaS kind: (path, query) of a small list endpoint.
SAAS_PROBES: dict[str, tuple[str, dict[str, str | int | bool]]] = {
    "saas/retell": ("/list-phone-numbers", {}),
    "saas/calcom": ("/webhooks", {"skip": 0, "take": 1}),
}


@dataclass
class Finding:
    """One check: what was checked (``subject`` is "repository", "secrets" or a component name), whether
    it is ok, what was found, and for a problem a hint and extra lines (such as GRANT statements)."""

    subject: str
    check: str
    ok: bool
    message: str
    hint: str | None = None
    lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def ok(self, subject: str, check: str, message: str) -> None:
        self.findings.append(Finding(subject, check, True, message))

    def problem(self, subject: str, check: str, message: str, hint: str | None = None, **kw: Any) -> None:
        self.findings.append(Finding(subject, check, False, message, hint, list(kw.get("lines", []))))

    def report(self, subject: str, check: str, ok: bool, message: str, hint: str | None) -> None:
        if ok:
            self.ok(subject, check, message)
        else:
            self.problem(subject, check, message, hint)

    def guard(self, subject: str, check: str, fn: Callable[[], None]) -> None:
        """Run one check; an exception becomes a problem finding (never a crash of the doctor)."""
        try:
            fn()
        except SafeholdError as exc:
            self.problem(subject, check, exc.message, exc.hint or None)
        except Exception as exc:  # a check must not hide the others
            self.problem(subject, check, f"unexpected {type(exc).__name__}: {exc}")


def run_doctor(
    config: Config, open_repo: Callable[[], Repository] | None, targets: Targets | None = None
) -> list[Finding]:
    """Run every check for ``config``; ``open_repo`` opens the main repository (None skips that check);
    ``targets`` names the files whose permissions are checked besides those the configuration names."""
    c = _Collector()
    if open_repo is not None:
        c.guard("repository", "open", lambda: _check_repository(c, open_repo))
    check_permissions(config, targets or Targets(config_file=None), c.report)
    _check_secrets(c, config)
    for name in config.components:
        c.guard(name, "component", lambda name=name: _check_component(c, config, name))  # type: ignore[misc]
    return c.findings


# ------------------------------------------------------------------------------------------ repository
def _check_repository(c: _Collector, open_repo: Callable[[], Repository]) -> None:
    repo = open_repo()
    count = len(list(repo.snapshots()))
    c.ok("repository", "open", f"reachable, the passphrase opens it ({count} snapshot(s))")


# ------------------------------------------------------------------------------------------ secrets
def _secret_refs(value: Any, loc: str) -> Iterator[tuple[str, SecretRef]]:
    """Every SecretRef inside a pydantic model / dict / list, with its dotted location."""
    if isinstance(value, SecretRef):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_refs(getattr(value, name), f"{loc}.{name}" if loc else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_refs(v, f"{loc}.{k}" if loc else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _secret_refs(v, f"{loc}[{i}]")


def _check_secrets(c: _Collector, config: Config) -> None:
    refs = [(loc, ref) for loc, ref in _secret_refs(config, "") if not loc.startswith("components.")]
    for name, comp in config.components.items():
        try:
            refs.extend(_secret_refs(comp.parsed_options(), f"components.{name}"))
        except Exception as exc:  # invalid options are reported by the component's own check
            c.problem(name, "options", f"invalid options: {exc}")
    for loc, ref in refs:
        try:
            ref.resolve()
        except SafeholdError as exc:
            c.problem("secrets", loc, f"{loc} ({ref.describe()}) does not resolve: {exc.message}", exc.hint)
        else:
            c.ok("secrets", loc, f"{loc} ({ref.describe()}) resolves")


# ------------------------------------------------------------------------------------------ components
def _check_component(c: _Collector, config: Config, name: str) -> None:
    kind = config.components[name].kind
    source = config.build_source(name)
    o = source.options
    check = _CHECKS.get(kind)
    if check is None:
        c.ok(name, "kind", f"{kind}: no checks for this kind")
        return
    check(c, name, o, source)


def _tool(
    c: _Collector, name: str, candidates: list[str], *, what: str, path: str | None = None
) -> str | None:
    """Find a tool and report it with its version; None (and a problem) when it is missing."""
    try:
        found = proc.find_tool(candidates, path=path)
    except SafeholdError as exc:
        c.problem(name, "tool", f"{what}: {exc.message}", exc.hint or f"Install {candidates[0]}.")
        return None
    version = proc.tool_version(found)
    c.ok(name, "tool", f"{what}: {found}" + (f" ({version})" if version else ""))
    return found


def _mysql(c: _Collector, name: str, o: Any, _source: Any) -> None:
    from safehold.sources.mysql.client import CLIENT_TOOLS, DUMP_TOOLS, check_mysql_privileges
    from safehold.sources.mysql.client import conn_from as _conn_from
    from safehold.sources.mysql.client import query as _query

    _tool(c, name, [o.dump_tool] if o.dump_tool else DUMP_TOOLS, what="dump tool")
    _tool(c, name, [o.client_tool] if o.client_tool else CLIENT_TOOLS, what="client tool (restore)")
    ci = _conn_from(o)
    conn = ci.connect()
    try:
        version = str(_query(conn, "SELECT VERSION()")[0][0])
        c.ok(name, "connect", f"connected as {ci.where} (server {version})")
        for db in o.databases:
            if _query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (db,)):
                c.ok(name, "database", f"database {db} exists")
            else:
                c.problem(
                    name, "database", f"database {db} does not exist or is not visible to {ci.where}",
                    "Check 'databases' in the component, and that the user has SELECT on it.",
                )  # fmt: skip
    finally:
        conn.close()
    lines = check_mysql_privileges(o)
    if not lines:
        c.ok(name, "privileges", "the user has every privilege the dump needs")
        return
    grants = [x for x in lines if x.startswith("GRANT ")]
    lacks = [x for x in lines if not x.startswith("GRANT ")]
    c.problem(
        name, "privileges", "; ".join(lacks),
        "Run as a MySQL administrator (without these the dump fails or silently omits triggers/routines):",
        lines=grants,
    )  # fmt: skip


def _postgresql(c: _Collector, name: str, o: Any, _source: Any) -> None:
    from safehold.sources.postgresql.source import _conn_from

    dump = _tool(c, name, [o.pg_dump] if o.pg_dump else ["pg_dump"], what="pg_dump")
    _tool(c, name, [o.pg_restore] if o.pg_restore else ["pg_restore"], what="pg_restore (restore)")
    ci = _conn_from(o)
    server_major = 0
    for db in o.databases:
        conn = ci.connect(db)
        try:
            server_major = int(conn.info.server_version) // 10000
            unreadable = conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', "
                "'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
                "AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2"
            ).fetchall()
            schemas = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND nspname NOT LIKE 'pg_toast%%' AND nspname NOT LIKE 'pg_temp%%' "
                "AND NOT has_schema_privilege(oid, 'USAGE') ORDER BY 1"
            ).fetchall()
        finally:
            conn.close()
        if not unreadable and not schemas:
            c.ok(name, "read", f"connected to {db} as {ci.where}; every table is readable")
            continue
        bad_schemas = sorted({str(s) for (s,) in schemas} | {str(s) for s, _t in unreadable})
        role = _pg_ident(ci.user)
        grants = [f"GRANT USAGE ON SCHEMA {_pg_ident(s)} TO {role};" for s in bad_schemas if (s,) in schemas]
        grants += [f"GRANT SELECT ON ALL TABLES IN SCHEMA {_pg_ident(s)} TO {role};" for s in bad_schemas]
        grants += [f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {_pg_ident(s)} TO {role};" for s in bad_schemas]
        shown = ", ".join(f"{s}.{t}" for s, t in unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        c.problem(
            name, "read", f"{ci.where} cannot read {len(unreadable)} relation(s) in {db}: {shown or '(schemas)'}",
            f"Run in database {db} as its owner or a superuser:", lines=grants,
        )  # fmt: skip
    if dump and server_major:
        m = re.search(r"(\d+)(?:\.\d+)?", proc.tool_version(dump))
        if m and int(m.group(1)) < server_major:
            c.problem(
                name, "version", f"pg_dump {m.group(1)} is older than the server ({server_major}); it refuses to dump",
                f"Install postgresql-client-{server_major} or set pg_dump to its path.",
            )  # fmt: skip


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _redis(c: _Collector, name: str, o: Any, _source: Any) -> None:
    from safehold.sources.redis.source import _Conn

    _tool(c, name, [o.redis_cli] if o.redis_cli else ["redis-cli"], what="redis-cli")
    ci = _Conn(o, {})
    client = ci.client()
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except Exception as exc:
        c.problem(name, "ping", f"no PING answer from {ci.where}: {type(exc).__name__}: {exc}",
                  "Check host, port, socket and the password reference.")  # fmt: skip
        return
    finally:
        client.close()
    c.ok(name, "ping", f"PING answered by {ci.where} (redis {version})")


def _readable(p: Path) -> str | None:
    """Why ``p`` cannot be backed up, or None."""
    if not p.exists() and not p.is_symlink():
        return "does not exist"
    if p.is_dir() and not os.access(p, os.R_OK | os.X_OK):
        return "folder is not readable"
    if p.is_file() and not os.access(p, os.R_OK):
        return "is not readable"
    return None


def _files(c: _Collector, name: str, o: Any, _source: Any) -> None:
    for path in o.paths:
        why = _readable(Path(path))
        if why:
            c.problem(name, "path", f"{path} {why}", "Fix the path in the component, or its permissions.")
        else:
            c.ok(name, "path", f"{path} exists and is readable")


def _sqlite(c: _Collector, name: str, o: Any, _source: Any) -> None:
    why = _readable(Path(o.path))
    if why:
        c.problem(name, "path", f"{o.path} {why}", "Fix 'path' in the component.")
        return
    try:
        conn = sqlite3.connect(f"file:{o.path}?mode=ro", uri=True, timeout=5)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        c.problem(name, "open", f"{o.path} does not open as a SQLite database: {exc}")
        return
    c.ok(name, "open", f"{o.path} opens read-only ({tables} tables; SQLite {sqlite3.sqlite_version})")


def _program(c: _Collector, name: str, argv: Any, shell: bool, what: str) -> None:
    prog = "/bin/sh" if shell else str(argv[0])
    found = shutil.which(prog)
    if found:
        c.ok(name, "program", f"{what}: {found}")
    else:
        c.problem(
            name, "program", f"{what}: {prog} not found or not executable", "Install it or fix the path."
        )


def _command(c: _Collector, name: str, o: Any, _source: Any) -> None:
    _program(c, name, o.command, o.shell, "command")
    if o.restore_command is not None:
        _program(c, name, o.restore_command, o.shell, "restore_command")
    if o.cwd and not Path(o.cwd).is_dir():
        c.problem(name, "cwd", f"working directory {o.cwd} does not exist")


def _git(c: _Collector, name: str, o: Any, _source: Any) -> None:
    git = _tool(c, name, ["git"], what="git")
    if git is None:
        return
    res = subprocess.run(
        [git, "-c", "safe.directory=*", "-C", o.path, "rev-parse", "--git-dir"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if res.returncode == 0:
        c.ok(name, "repository", f"{o.path} is a git repository")
    else:
        c.problem(name, "repository", f"{o.path} is not a git repository: {res.stderr.strip()[-200:]}")


def _system(c: _Collector, name: str, o: Any, _source: Any) -> None:
    why = _readable(Path(o.root))
    if why:
        c.problem(name, "root", f"root {o.root} {why}")
    else:
        c.ok(name, "root", f"root {o.root} is readable")


def _sysinfo(c: _Collector, name: str, o: Any, _source: Any) -> None:
    tools = {"packages": "dpkg", "manual-packages": "apt-mark"}
    for item in o.required:
        if item in tools:
            _tool(c, name, [tools[item]], what=f"{item} ({tools[item]})", path=o.path)


def _saas(c: _Collector, name: str, o: Any, source: Any) -> None:
    path, params = SAAS_PROBES[source.kind]
    try:
        o.api_key.resolve()
    except SafeholdError as exc:
        c.problem(
            name, "api_key", f"API key ({o.api_key.describe()}) does not resolve: {exc.message}", exc.hint
        )
        return
    with source.client() as api:
        api.request("GET", path, params=params)
    c.ok(name, "api", f"{o.base_url} answers GET {path} with this API key ({o.api_key.describe()})")


_CHECKS: dict[str, Callable[[_Collector, str, Any, Any], None]] = {
    "mysql": _mysql,
    "postgresql": _postgresql,
    "redis": _redis,
    "files": _files,
    "sqlite": _sqlite,
    "command": _command,
    "git": _git,
    "system": _system,
    "system-info": _sysinfo,
    "saas/retell": _saas,
    "saas/calcom": _saas,
}
