"""The source conformance suite: every registered kind backs up into a real repository, restores from it
into a fresh target, and the target is proven identical to the original.

One :class:`Case` per kind (``CASES``): it builds the original (real servers, real tools, a real git
repository, a temporary system root, the fake SaaS servers), returns the source, optionally damages the
original before the restore (FLUSHALL, deleted SaaS objects), names the restore options (a fresh database
name, another root), and proves the result. The runner is the same for all: ``backup_components`` into
the ``repo`` fixture, then ``source.restore(EngineComponentReader(...), SourceContext(options=...))``.

The whole contract, for every kind and the test-only kind ``test/notes`` (:mod:`tests.kinds.notes_kind`,
registered for these tests only): :func:`test_the_contract_is_complete_and_typed` checks registration,
the typed ``Options``/``RestoreOptions``, the restore rank, the export attributes and every method's
signature; :func:`test_backup_restore_identical` runs preflight (findings, never raised), backup, the
secrets note, ``plan_restore`` then ``apply`` of that very plan, a refused unknown restore option, and the
export layout of the stored folder.

A kind added to the registry without a case here fails :func:`test_every_registered_kind_has_a_case`:
adding a kind means its package and one case in this file.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from safehold.engine.format.repository import Repository
from safehold.errors import UsageError
from safehold.operations.backup.components import EngineComponentReader, backup_components
from safehold.operations.export.layout import Planner
from safehold.sources import registry
from safehold.sources.base import Finding, RestorePlan, RestoreReport, Source, SourceContext
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_calcom, seed_retell, snapshot_state
from tests.fakes.saas_server import FakeClock, FakeSaasServer
from tests.helpers.torture import make_torture_tree
from tests.helpers.treecompare import compare_trees
from tests.kinds.notes_kind import KIND as NOTES
from tests.sources import test_git as gitcase
from tests.sources import test_mysql as mycase
from tests.sources import test_postgresql as pgcase
from tests.sources import test_redis as rediscase
from tests.sources import test_saas_retell as retellcase
from tests.sources import test_sqlite as sqlitecase
from tests.sources import test_system as systemcase
from tests.sources.conftest import (  # noqa: F401 (fixtures)
    mysql_dbs,
    pg_dbs,
    redis_server,
)

IS_ROOT = os.geteuid() == 0


@dataclass
class Case:
    """What the runner needs from one kind: the source, what happens between backup and restore, the
    restore options, and the proof (which gets the restore report)."""

    source: Any
    verify: Callable[[RestoreReport], None]
    options: dict[str, Any] = field(default_factory=dict)
    damage: Callable[[], None] = lambda: None
    cleanup: Callable[[], None] = lambda: None


class Env:
    """What a case may use: a private folder and the pytest fixtures (by name)."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp_path
        self.request = request

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)


def _source(kind: str, name: str, options: dict[str, Any], **kw: Any) -> Any:
    cls = registry.source_class(kind)
    return cls(name, cls.Options.model_validate(options), **kw)


# ------------------------------------------------------------------------------------------ the cases
def files_case(env: Env) -> Case:
    src = env.tmp / "app"
    make_torture_tree(src)
    target = env.tmp / "restored"

    def verify(_r: RestoreReport) -> None:
        assert compare_trees(src, target / str(src).lstrip("/"), check_owner=IS_ROOT) == []

    return Case(_source("files", "app", {"paths": [str(src)]}), verify, {"target_root": str(target)})


def mysql_case(env: Env) -> Case:
    make = env.fixture("mysql_dbs")
    db, fresh = make(), make(create=False)
    mycase.fill(db)
    before = mycase.table_state(db)
    source = _source("mysql", "database", {"databases": [db], "text_exports": ["people"]})

    def verify(report: RestoreReport) -> None:
        assert report.details[fresh]["problems"] == []
        assert mycase.table_state(fresh) == before  # CHECKSUM TABLE, counts, routines, triggers, views

    return Case(source, verify, {"database": fresh})


def postgresql_case(env: Env) -> Case:
    make = env.fixture("pg_dbs")
    db, fresh = make(), make(create=False)
    pgcase.fill(db)
    before = pgcase.state(db)
    source = _source("postgresql", "pg", {"databases": [db]})

    def verify(_r: RestoreReport) -> None:
        assert pgcase.state(fresh) == before  # per-table md5 and counts, functions, triggers, sequence

    return Case(source, verify, {"database": fresh})


def sqlite_case(env: Env) -> Case:
    path, fresh = env.tmp / "app.sqlite3", env.tmp / "restored" / "app.sqlite3"
    fresh.parent.mkdir()
    sqlitecase.make_db(path, "wal")
    before = sqlitecase.content(path)

    def verify(_r: RestoreReport) -> None:
        assert sqlitecase.content(fresh) == before

    return Case(_source("sqlite", "db", {"path": str(path)}), verify, {"path": str(fresh)})


def redis_case(env: Env) -> Case:
    srv = env.fixture("redis_server")()
    for db, prefix in ((0, ""), (3, "db3:")):
        c = srv.client(db)
        rediscase.populate(c, prefix=prefix)
        c.close()
    before = rediscase.state(srv)
    assert before[0] and before[3]

    def damage() -> None:
        c = srv.client()
        c.flushall()
        c.close()
        assert rediscase.state(srv) == {0: {}, 3: {}}

    def verify(_r: RestoreReport) -> None:
        assert rediscase.state(srv) == before  # keys, types, values, TTLs (to 10 minutes)

    source = _source("redis", "cache", {"port": srv.port})
    return Case(source, verify, {"host": "127.0.0.1", "port": srv.port}, damage=damage)


def git_case(env: Env) -> Case:
    r = env.tmp / "src" / "code"
    r.mkdir(parents=True)
    gitcase.git(r, "init", "-q", "-b", "main")
    for i in range(3):
        (r / "file.txt").write_text(f"v{i}\n")
        gitcase.git(r, "add", "file.txt")
        gitcase.git(r, "commit", "-q", "-m", f"commit {i}")
    gitcase.git(r, "tag", "-a", "v1", "-m", "release")
    gitcase.git(r, "checkout", "-q", "-b", "feature")
    (r / "feat.txt").write_text("feature\n")
    gitcase.git(r, "add", "feat.txt")
    gitcase.git(r, "commit", "-q", "-m", "feature work")
    gitcase.git(r, "checkout", "-q", "main")
    before, head = gitcase.refs(r), gitcase.git(r, "rev-parse", "HEAD")
    target = env.tmp / "restored"

    def verify(_r: RestoreReport) -> None:
        clone = target / str(r).lstrip("/")
        assert gitcase.refs(clone) == before
        assert gitcase.git(clone, "rev-parse", "HEAD") == head
        assert gitcase.git(clone, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
        assert (clone / "file.txt").read_text() == "v2\n"

    source = _source("git", "code", {"path": str(r), "bundle": True})
    return Case(source, verify, {"target_root": str(target)})


def system_case(env: Env) -> Case:
    root, other = env.tmp / "root", env.tmp / "other-root"
    systemcase.build_root(root)
    # each collected folder (its content and the metadata of everything below it: a stored folder's own
    # mtime is not part of restore_tree's contract, which recreates the tree *below* its target)
    le = "etc/letsencrypt"
    collected = ["etc/nginx", "etc/php/8.2/fpm", "etc/php/8.3/fpm", "etc/supervisor"]
    collected += [f"{le}/archive", f"{le}/live", f"{le}/renewal"]

    def verify(_r: RestoreReport) -> None:
        for rel in collected:
            diffs = compare_trees(root / rel, other / rel, check_owner=IS_ROOT)
            assert diffs == [], (rel, diffs)
        for rel in ["var/spool/cron/crontabs/www-data", "etc/crontab", "etc/cron.d/backup"]:
            a, b = (root / rel).stat(), (other / rel).stat()
            assert (other / rel).read_bytes() == (root / rel).read_bytes(), rel
            assert (a.st_mode, a.st_mtime_ns) == (b.st_mode, b.st_mtime_ns), rel
            if IS_ROOT:
                assert (a.st_uid, a.st_gid) == (b.st_uid, b.st_gid), rel
        assert not (other / "etc/php/8.3/cli").exists()  # not a collected path

    return Case(_source("system", "system", {"root": str(root)}), verify, {"target_root": str(other)})


def sysinfo_case(env: Env) -> Case:
    apt_mark = shutil.which("apt-mark")
    assert apt_mark, "apt-mark is part of every Debian system"
    manual = subprocess.run(
        [apt_mark, "showmanual"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert manual
    items = ["packages", "manual-packages", "kernel", "os-release"]
    source = _source("system-info", "host", {"collect": items})

    def verify(report: RestoreReport) -> None:
        # the plan names exactly the manual packages, and nothing was run (run_install not given)
        assert report.actions == ["apt-get update", "apt-get install -y " + " ".join(manual)]
        assert "ran" not in report.details
        assert any("not run" in w for w in report.warnings)

    return Case(source, verify)


def command_case(env: Env) -> Case:
    data = os.urandom(300_000) + b"\n".join(b"line %d" % i for i in range(20_000))
    original, received = env.tmp / "original.bin", env.tmp / "received.bin"
    original.write_bytes(data)
    copy = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))"
    source = _source(
        "command",
        "export",
        {"command": ["cat", str(original)], "restore_command": [sys.executable, "-c", copy, str(received)]},
    )

    def verify(_r: RestoreReport) -> None:
        assert received.read_bytes() == data

    return Case(source, verify, damage=original.unlink)


def _saas_server(env: Env, app: Any) -> str:
    server = FakeSaasServer(app)
    server.__enter__()
    env.request.addfinalizer(lambda: server.__exit__(None, None, None))
    return str(server.url)


def retell_case(env: Env) -> Case:
    clock = FakeClock()
    app = FakeRetell(api_key="key_conformance_retell", clock=clock)
    seeded = seed_retell(app)
    url = _saas_server(env, app)
    (env.tmp / "retell.key").write_text("key_conformance_retell")
    opts = {"api_key": {"file": str(env.tmp / "retell.key")}, "base_url": url}
    source = _source("saas/retell", "voice", opts, clock=clock)
    original = snapshot_state(app)
    llm_b = seeded["llms"][1]["llm_id"]
    agent = seeded["agents"][2]["agent_id"]

    def damage() -> None:
        del app.llms[llm_b]
        del app.agents[agent]
        app.latest(seeded["agents"][0]["agent_id"])["agent_name"] = "Renamed"
        app.phones["+14157774444"]["nickname"] = "changed"

    def verify(report: RestoreReport) -> None:
        id_map = report.details["id_map"]
        assert set(id_map["llm"]) == {llm_b} and set(id_map["agent"]) == {agent}
        assert retellcase.normalized(snapshot_state(app)) == retellcase.normalized(original, id_map)

    return Case(source, verify, damage=damage)


def calcom_case(env: Env) -> Case:
    clock = FakeClock()
    app = FakeCalcom(api_key="cal_conformance_key", clock=clock)
    seeded = seed_calcom(app)
    url = _saas_server(env, app)
    (env.tmp / "cal.key").write_text("cal_conformance_key")
    opts = {"api_key": {"file": str(env.tmp / "cal.key")}, "base_url": url + "/v2"}
    source = _source("saas/calcom", "calendar", opts, clock=clock)
    original = snapshot_state(app)
    office = seeded["schedules"][0]["id"]
    consult, workshop = seeded["event_types"][0]["id"], seeded["event_types"][1]["id"]
    team = seeded["team"]["id"]

    def damage() -> None:
        del app.schedules[office]
        app.event_types[consult]["scheduleId"] = None
        app.event_types[workshop]["title"] = "Changed"
        app.teams[team]["name"] = "Changed"

    def verify(report: RestoreReport) -> None:
        new_office = report.details["id_map"]["schedule"][str(office)]
        expected = original
        expected["schedules"][new_office] = {**expected["schedules"].pop(office), "id": new_office}
        expected["event_types"][consult]["scheduleId"] = new_office
        assert snapshot_state(app) == expected  # equal modulo the re-created schedule's id

    return Case(source, verify, damage=damage)


def notes_case(env: Env) -> Case:
    src, target = env.tmp / "notes", env.tmp / "restored"
    src.mkdir()
    notes = {"a.txt": "first note\n", "b.txt": "second note\n"}
    for name, text in notes.items():
        (src / name).write_text(text)

    def verify(_r: RestoreReport) -> None:
        back = target / str(src).lstrip("/")
        assert {p.name: p.read_text() for p in back.iterdir()} == notes

    return Case(_source(NOTES, "notes", {"path": str(src)}), verify, {"target_root": str(target)})


#: Kinds that exist only in the test suite, registered by the :func:`test_kinds` fixture.
TEST_KINDS = {NOTES: "tests.kinds.notes_kind:NotesSource"}

CASES: dict[str, Callable[[Env], Case]] = {
    "files": files_case,
    "mysql": mysql_case,
    "postgresql": postgresql_case,
    "sqlite": sqlite_case,
    "redis": redis_case,
    "git": git_case,
    "system": system_case,
    "system-info": sysinfo_case,
    "command": command_case,
    "saas/retell": retell_case,
    "saas/calcom": calcom_case,
    NOTES: notes_case,
}
#: The methods of the contract; a kind that overrides one keeps its parameters.
CONTRACT = (
    "backup",
    "preflight",
    "secrets_note",
    "plan_restore",
    "apply",
    "restore",
    "restore_options",
    "redirect",
    "redirected_settings",
    "restored_paths",
    "safety_source",
    "restore_hints",
    "verify",
    "cleanup_scratch",
    "export_layout",
    "drift",
)


@pytest.fixture
def test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only kinds, registered for one test (the registry's list is the production one otherwise)."""
    for kind, target in TEST_KINDS.items():
        monkeypatch.setitem(registry._KINDS, kind, target)


# ------------------------------------------------------------------------------------------ the suite
def test_every_registered_kind_has_a_case() -> None:
    assert sorted(set(CASES) - set(TEST_KINDS)) == registry.kinds(), (
        "a registered source kind needs a conformance case"
    )


def test_restore_ranks_order_every_kind() -> None:
    ranks = [registry.source_class(k).restore_rank for k in registry.kinds()]
    assert len(set(ranks)) == len(ranks), "two kinds with one restore rank restore in an arbitrary order"


@pytest.mark.usefixtures("test_kinds")
@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_contract_is_complete_and_typed(kind: str) -> None:
    cls = registry.source_class(kind)
    assert issubclass(cls, Source) and cls.kind == kind and not inspect.isabstract(cls)
    for model in (cls.Options, cls.RestoreOptions):
        assert issubclass(model, BaseModel) and model.model_config.get("extra") == "forbid", model
        assert [n for n, f in model.model_fields.items() if not f.description] == [], model
    assert isinstance(cls.restore_rank, int) and cls.restore_rank != Source.restore_rank
    assert isinstance(cls.compares_drift, bool) and isinstance(cls.keeps_file_times, bool)
    folder = cls.export_folder
    assert folder is None or (folder and not folder.startswith("/") and ".." not in folder.split("/"))
    assert "{base}" in cls.export_note and (cls.export_warning is None or cls.export_warning)
    for name in CONTRACT:
        want = inspect.signature(getattr(Source, name)).parameters
        got = inspect.signature(getattr(cls, name)).parameters
        assert list(got) == list(want), f"{kind}.{name}{tuple(got)}: the contract says {tuple(want)}"


@pytest.mark.usefixtures("mysql_dbs", "pg_dbs", "redis_server", "test_kinds")
@pytest.mark.parametrize("kind", sorted(CASES))
def test_backup_restore_identical(
    kind: str, repo: Repository, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    case = CASES[kind](Env(tmp_path, request))
    source = case.source
    assert source.kind == kind
    findings = source.preflight(SourceContext())
    assert findings and all(isinstance(f, Finding) and f.subject == source.name for f in findings)
    snap, results = backup_components(repo, [("component", source, False)])
    assert [(r.status, r.error) for r in results] == [("ok", None)]
    assert not snap.partial and snap.components["component"]["kind"] == kind
    note = source.secrets_note()
    assert note is None or (isinstance(note, str) and note)

    case.damage()
    stored = repo.find_snapshot(snap.id)
    reader = EngineComponentReader(repo, stored, "component")
    with pytest.raises(UsageError, match=f"component {source.name} "):
        source.restore_options({**case.options, "no_such_option": 1})
    ctx = SourceContext(options=case.options)
    plan = source.plan_restore(reader, ctx)  # the plan shown ...
    assert isinstance(plan, RestorePlan) and plan.component == source.name
    assert isinstance(plan.options, source.RestoreOptions)
    report = source.apply(plan, reader, ctx)  # ... is the plan executed
    case.verify(report)

    parts, _root = Planner(repo, stored).plan()
    [part] = [p for p in parts if p.component == "component"]
    assert part.kind == kind and part.entries and part.notes
    for entry in part.entries:
        assert entry.dest and not entry.dest.startswith("/") and ".." not in entry.dest.split("/")
