"""The restore contract: the plan shown is the plan applied, restore options are typed and checked,
redirects reach every kind that takes them, and verify proves a restore inside a sandbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from safehold.errors import SourceError, UsageError
from safehold.sources import registry
from safehold.sources.base import Redirect, Sandbox, SourceContext
from safehold.sources.saas.retell import RetellSource
from safehold.sources.sqlite import SQLiteSource
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_retell, snapshot_state
from tests.fakes.saas_server import FakeClock, FakeSaasServer
from tests.sources.memcomponent import MemoryComponent

KEY = "key_retell_0123456789abcdef"


def _retell(tmp_path: Path, url: str, clock: FakeClock) -> RetellSource:
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY + "\n")
    return RetellSource("retell", {"api_key": {"file": str(keyfile)}, "base_url": url}, clock=clock)


def test_saas_apply_refuses_when_the_account_changed_since_the_plan(tmp_path: Path) -> None:
    clock = FakeClock()
    app = FakeRetell(api_key=KEY, clock=clock, max_page=2)
    seeded = seed_retell(app)
    with FakeSaasServer(app) as server:
        source = _retell(tmp_path, server.url, clock)
        snap = MemoryComponent()
        source.backup(snap, SourceContext())
        llm_a = seeded["llms"][0]["llm_id"]
        app.llms[llm_a]["states"][0]["state_prompt"] = "drifted"
        plan = source.plan_restore(snap, SourceContext())
        assert any(line.startswith(f"llm {llm_a}") and "update" in line for line in plan.actions)
        # between the plan and its execution, someone edits the same object differently
        app.llms[llm_a]["general_prompt"] = "edited after the plan"
        before = snapshot_state(app)
        with pytest.raises(SourceError, match="changed since the plan was made"):
            source.apply(plan, snap, SourceContext())
        assert snapshot_state(app) == before  # the first object of the plan: nothing was written
        # planned again, the new plan applies and reports exactly what it showed
        plan = source.plan_restore(snap, SourceContext())
        report = source.apply(plan, snap, SourceContext())
        assert report.actions == plan.actions


def test_unknown_restore_option_is_a_usage_error_naming_the_keys(tmp_path: Path) -> None:
    source = SQLiteSource("db", {"path": str(tmp_path / "app.sqlite")})
    with pytest.raises(UsageError) as exc:
        source.restore_options({"pth": "/tmp/x"})
    assert "pth" in exc.value.message and "path" in (exc.value.hint or "")
    with pytest.raises(UsageError):
        registry.source_class("redis")("cache", {}).restore_options({"mode": "tape"})


def test_sqlite_restores_below_the_target_root(tmp_path: Path) -> None:
    live = tmp_path / "srv" / "app.sqlite"
    live.parent.mkdir()
    conn = sqlite3.connect(live)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    conn.commit()
    conn.close()
    source = SQLiteSource("db", {"path": str(live)})
    snap = MemoryComponent()
    source.backup(snap, SourceContext())
    root = tmp_path / "elsewhere"
    ctx = SourceContext(options=source.redirect(Redirect(target_root=str(root))))
    plan = source.plan_restore(snap, ctx)  # the live file exists: only the redirect makes this possible
    source.apply(plan, snap, ctx)
    copy = root / str(live).lstrip("/")
    assert sqlite3.connect(copy).execute("SELECT count(*) FROM t").fetchone() == (10,)
    # the safety snapshot: nothing live is replaced below another root, nor without --force
    assert source.safety_source(SourceContext(force=True, options=ctx.options)) is None
    assert source.safety_source(SourceContext()) is None
    assert source.safety_source(SourceContext(force=True)) is source


def test_sqlite_verify_in_a_sandbox_and_detects_damage(tmp_path: Path) -> None:
    live = tmp_path / "app.sqlite"
    conn = sqlite3.connect(live)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    conn.close()
    source = SQLiteSource("db", {"path": str(live)})
    snap = MemoryComponent()
    source.backup(snap, SourceContext())
    sandbox = Sandbox(root=tmp_path / "sandbox")
    report = source.verify(snap, sandbox, SourceContext())
    assert report.ok and report.checks[0].check == "restore"
    assert not list((tmp_path / "sandbox").rglob("*.sqlite3"))  # cleaned up
    # the statistics say 100 rows; a copy with 99 must fail the verification
    conn = sqlite3.connect(live)
    conn.execute("DELETE FROM t WHERE x = 0")
    conn.commit()
    conn.close()
    damaged = MemoryComponent()
    source.backup(damaged, SourceContext())
    damaged.files["table_statistics.json"] = snap.files["table_statistics.json"]
    report = source.verify(damaged, sandbox, SourceContext())
    assert not report.ok and "rows" in report.checks[0].message


def test_every_kind_declares_the_contract() -> None:
    ranks = {}
    for kind in registry.kinds():
        cls = registry.source_class(kind)
        assert cls.kind == kind
        for name, field in cls.RestoreOptions.model_fields.items():
            assert field.description, (kind, name)
        ranks[kind] = cls.restore_rank
    # packages and system configuration before files, files before databases, SaaS and commands last
    assert ranks["system-info"] < ranks["system"] < ranks["files"] < ranks["mysql"] < ranks["redis"]
    assert ranks["redis"] < ranks["saas/retell"] < ranks["command"]
