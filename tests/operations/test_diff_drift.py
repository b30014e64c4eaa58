"""``safehold diff`` shows SaaS configuration drift field by field, from two real snapshots of exports
taken from the fake Retell and Cal.com servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safehold.engine.format.repository import Repository
from safehold.operations.backup.components import backup_components
from safehold.operations.inspect.diff import configuration_drift
from safehold.sources.files import FilesSource
from safehold.sources.saas.calcom import CalcomSource
from safehold.sources.saas.retell import RetellSource
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_calcom, seed_retell
from tests.fakes.saas_server import FakeClock, FakeSaasServer
from tests.helpers.fixtures import Result

RETELL_KEY = "key_retell_drift_0123456789"
CAL_KEY = "cal_live_drift_0123456789"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clock = FakeClock()
    retell, cal = FakeRetell(api_key=RETELL_KEY, clock=clock), FakeCalcom(api_key=CAL_KEY, clock=clock)
    seeded = {"retell": seed_retell(retell), "calcom": seed_calcom(cal)}
    (tmp_path / "retell.key").write_text(RETELL_KEY)
    (tmp_path / "cal.key").write_text(CAL_KEY)
    with FakeSaasServer(retell) as rs, FakeSaasServer(cal) as cs:
        sources = [
            (
                "voice",
                RetellSource(
                    "voice",
                    RetellSource.Options.model_validate(
                        {"api_key": {"file": str(tmp_path / "retell.key")}, "base_url": rs.url}
                    ),
                    clock=clock,
                ),
                False,
            ),
            (
                "calendar",
                CalcomSource(
                    "calendar",
                    CalcomSource.Options.model_validate(
                        {"api_key": {"file": str(tmp_path / "cal.key")}, "base_url": cs.url + "/v2"}
                    ),
                    clock=clock,
                ),
                False,
            ),
        ]
        yield {"retell": retell, "calcom": cal, "seeded": seeded, "sources": sources}


def _two_snapshots(repo: Repository, tmp_path: Path, services: dict[str, Any]) -> tuple[str, str]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("v1\n")
    files = ("docs", FilesSource("docs", {"paths": [str(docs)]}), False)
    first, res1 = backup_components(repo, [files, *services["sources"]])
    assert [r.status for r in res1] == ["ok", "ok", "ok"], [r.error for r in res1]

    retell: FakeRetell = services["retell"]
    cal: FakeCalcom = services["calcom"]
    seeded = services["seeded"]
    llm = seeded["retell"]["llms"][0]["llm_id"]  # the LLM (prompt) of agents 0 and 1
    retell.llms[llm]["general_prompt"] = "You are the night shift."
    retell.add_phone("+14157776666", nickname="Night line")
    hook = seeded["calcom"]["hooks"][0]["id"]
    cal.webhooks[hook]["secret"] = "rotated-webhook-secret-value"
    (docs / "README.md").write_text("v2\n")

    second, res2 = backup_components(repo, [files, *services["sources"]])
    assert [r.status for r in res2] == ["ok", "ok", "ok"], [r.error for r in res2]
    return first.id, second.id


def test_drift_field_by_field(repo: Repository, tmp_path: Path, services: dict[str, Any]) -> None:
    first, second = _two_snapshots(repo, tmp_path, services)
    llm = services["seeded"]["retell"]["llms"][0]["llm_id"]
    hook = services["seeded"]["calcom"]["hooks"][0]["id"]
    drift = {d.component: d for d in configuration_drift(repo, first, second)}
    assert set(drift) == {"voice", "calendar"}  # the files component is not a SaaS export
    assert drift["voice"].kind == "saas/retell"
    assert drift["voice"].lines == [
        f'~ llms/{llm}.json: general_prompt: "You are the front desk." -> "You are the night shift."',
        "+ phone-numbers/+14157776666.json (Night line)",
    ]
    assert drift["calendar"].lines == [f"~ webhooks/{hook}.json: secret: (secret changed)"]
    # the same snapshot twice: no drift at all
    assert all(not d.lines for d in configuration_drift(repo, second, second))


def test_cli_diff_prints_drift(
    repo: Repository, tmp_path: Path, services: dict[str, Any], run: Callable[..., Result]
) -> None:
    first, second = _two_snapshots(repo, tmp_path, services)
    llm = services["seeded"]["retell"]["llms"][0]["llm_id"]
    r = run("diff", first[:8], second[:8])
    assert r.code == 0, r.err
    files_part, _, drift_part = r.out.partition("configuration drift:")
    assert "M  /docs" in files_part and "README.md" in files_part
    assert "voice (saas/retell): 2 change(s)" in drift_part
    assert f'~ llms/{llm}.json: general_prompt: "You are the front desk." -> "You are the night shift."' in (
        drift_part
    )
    assert "+ phone-numbers/+14157776666.json (Night line)" in drift_part
    assert "calendar (saas/calcom): 1 change(s)" in drift_part
    assert "rotated-webhook-secret-value" not in r.out and CAL_KEY not in r.out and RETELL_KEY not in r.out

    j = run("diff", first, second, "--json")
    assert j.code == 0, j.err
    doc = j.json()
    assert doc["drift"]["voice"]["kind"] == "saas/retell"
    assert doc["drift"]["voice"]["changes"][1] == "+ phone-numbers/+14157776666.json (Night line)"
    assert len(doc["drift"]["calendar"]["changes"]) == 1
    assert any(c["kind"] == "M" and c["path"].endswith("README.md") for c in doc["changes"])


def test_unchanged_exports_are_no_change_but_touched_files_are(
    repo: Repository, tmp_path: Path, services: dict[str, Any], run: Callable[..., Result]
) -> None:
    """Exports written again with the same content are not 'metadata only' changes (their times are
    those of the export's own writing); a file of a files component touched without a change is."""
    import os

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("v1\n")
    files = ("docs", FilesSource("docs", {"paths": [str(docs)]}), False)
    first, _ = backup_components(repo, [files, *services["sources"]])
    os.utime(docs / "README.md", ns=(1_000_000_000, 1_000_000_000))
    second, _ = backup_components(repo, [files, *services["sources"]])
    r = run("diff", first.id[:8], second.id[:8], "--json")
    assert r.code == 0, r.err
    doc = r.json()
    changed = {c["path"]: c["kind"] for c in doc["changes"]}
    assert [p for p in changed if p.startswith(("/voice", "/calendar"))] == []
    assert changed[f"/docs{docs}/README.md"] == "U"
    assert all(not d["changes"] for d in doc["drift"].values())
