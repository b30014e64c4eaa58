"""Drills on a whole server: a full profile passes; a dump that loads fewer rows than recorded, a dump that
does not load, a missing component and a blob that does not decrypt fail it; everything the drill made is
gone afterwards, also after Ctrl-C and after a SIGKILL (cleaned by the next drill or 'drill --cleanup')."""

from __future__ import annotations

from tests.drill.conftest import DrillServer

FULL_KINDS = {
    "app": "files", "config": "files", "storage": "files", "database": "mysql", "redis": "redis",
    "system": "system", "supervisor": "system", "cron": "system", "tls": "system", "docs": "files",
    "scripts": "files", "git": "git", "system-info": "system-info", "retell": "saas/retell",
    "calcom": "saas/calcom", "billing": "postgresql", "queue-db": "sqlite", "code": "git",
}  # fmt: skip


def test_a_full_profile_drill_passes_and_leaves_nothing(drill_server: DrillServer) -> None:
    d = drill_server
    run = d.backup()
    assert run["ok"] is True, run
    r = d.drill()
    assert r.code == 0, [(c["name"], c["message"]) for c in r.json()["components"] if not c["ok"]]
    out = r.json()
    steps = {c["name"]: c for c in out["components"]}
    parsed = {n: steps.pop(n) for n in list(steps) if n.endswith(":parsed")}
    assert {n: c["kind"] for n, c in steps.items()} == FULL_KINDS
    # system files parsed where a parser exists: nginx -t of the restored configuration, certificates
    assert set(parsed) == {"system:parsed", "tls:parsed"} and all(c["ok"] for c in parsed.values()), parsed
    assert parsed["system:parsed"]["message"].startswith("nginx -t: the configuration (4 file(s)) is valid")
    assert (
        "fullchain.pem (app.example.test, www.app.example.test): valid until"
        in parsed["system:parsed"]["message"]
    )
    assert (
        "/cert.pem (app.example.test, www.app.example.test): valid until" in parsed["tls:parsed"]["message"]
    )
    assert all(c["ok"] for c in steps.values()), [c for c in steps.values() if not c["ok"]]
    assert "tables and" in steps["database"]["message"] and "rows as recorded" in steps["database"]["message"]
    assert "2 routines, 1 triggers, 1 views, 0 events" in steps["database"]["message"]
    assert "250 rows as recorded" in steps["billing"]["message"] and "1 views" in steps["billing"]["message"]
    assert steps["queue-db"]["message"] == "app.sqlite: integrity check ok, row counts of 1 tables match"
    assert "keys" in steps["redis"]["message"] and "as recorded" in steps["redis"]["message"]
    assert steps["git"]["message"] == "no bundle (bundle = false): the state files only"
    assert "cloned, HEAD" in steps["code"]["message"] and "2 commits, fsck clean" in steps["code"]["message"]
    assert steps["retell"]["message"].startswith("export parses: ")
    assert "identical to the snapshot" in steps["app"]["message"]
    assert out["within_rto"] is True and out["rto_seconds"] == 3600
    assert list(d.sandbox.iterdir()) == [] and d.scratch_databases() == []
    # the result is in the repository: status sees the drill against the RTO
    st = d.cli("--config", str(d.s.config), "--json", "status").json()
    (rto,) = [o for o in st["objectives"] if o["name"] == "rto"]
    assert rto["ok"] is True and rto["profile"] == "full", rto
