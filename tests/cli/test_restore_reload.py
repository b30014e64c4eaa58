"""The system component's reload steps: printed in the plan and the result (text and --json), run only
with --reload-services. The services are fakes on PATH that log their arguments: the real nginx,
systemctl and supervisorctl are never called."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PASS = "reload test passphrase"
FAKES = ("nginx", "systemctl", "supervisorctl", "certbot")


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "sysroot"
    (root / "etc/nginx").mkdir(parents=True)
    (root / "etc/nginx/nginx.conf").write_text("events {}\n")
    (root / "etc/supervisor/conf.d").mkdir(parents=True)
    (root / "etc/supervisor/conf.d/worker.conf").write_text("[program:queue]\n")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    calls = tmp_path / "calls.log"
    for name in FAKES:
        script = fakebin / name
        # 'nginx -t' fails while the file fail-nginx exists
        script.write_text(
            "#!/bin/sh\n"
            f'echo "{name} $*" >> {calls}\n'
            f'if [ "{name}" = nginx ] && [ -e {tmp_path / "fail-nginx"} ]; then '
            'echo "nginx: [emerg] unexpected end of file" >&2; exit 1; fi\n'
        )
        script.chmod(0o755)
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "RELOAD_PASS" }}

[components.system]
kind = "system"
root = "{root}"
nginx = ["etc/nginx"]
supervisor = ["etc/supervisor"]
php_fpm = []
cron = []
redis = []
systemd = []
letsencrypt = []
''')
    return {"tmp": tmp_path, "root": root, "fakebin": fakebin, "calls": calls, "config": cfg}


def _env(site: dict[str, Path]) -> dict[str, str]:
    return {
        "SAFEHOLD_CONFIG": str(site["config"]),
        "RELOAD_PASS": PASS,
        "SAFEHOLD_REPOSITORY": "",
        "PATH": f"{site['fakebin']}{os.pathsep}{os.environ['PATH']}",
    }


STEPS = ["nginx -t && systemctl reload nginx", "supervisorctl reread && supervisorctl update"]


def test_reload_steps_are_printed_and_run_only_when_asked(site, run) -> None:
    env = _env(site)
    assert run("init", env=env, password=None).code == 0
    r = run("backup", env=env, password=None)
    assert r.code == 0, r.err + r.out
    plan = run("restore", "system", "--dry-run", env=env, password=None)
    assert plan.code == 0, plan.err
    assert "Reload steps to run afterwards:" in plan.out
    assert all(f"     {s}" in plan.out for s in STEPS) and "--reload-services runs them" in plan.out
    doc = run("restore", "system", "--dry-run", "--json", env=env, password=None).json()
    assert doc["next_steps"] == STEPS and doc["components"]["system"]["next_steps"] == STEPS
    # restored without the option: the steps are named, nothing is run
    (site["root"] / "etc/nginx/nginx.conf").write_text("broken {\n")
    r = run("restore", "system", "--yes", env=env, password=None)
    assert r.code == 0, r.err + r.out
    assert (site["root"] / "etc/nginx/nginx.conf").read_text() == "events {}\n"
    assert f"next: run '{STEPS[0]}'; '{STEPS[1]}' (or --reload-services)" in r.out
    assert not site["calls"].exists()
    # with the option: run in order, each reported
    r = run("restore", "system", "--yes", "--reload-services", "--json", env=env, password=None)
    assert r.code == 0, r.err + r.out
    assert [x["command"] for x in r.json()["reloads"]] == STEPS and all(x["ok"] for x in r.json()["reloads"])
    assert site["calls"].read_text().splitlines() == [
        "nginx -t",
        "systemctl reload nginx",
        "supervisorctl reread",
        "supervisorctl update",
    ]


def test_a_failing_reload_step_is_reported_after_a_complete_restore(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    run("backup", env=env, password=None)
    (site["tmp"] / "fail-nginx").write_text("")
    r = run("restore", "system", "--yes", "--reload-services", env=env, password=None)
    assert r.code == 1
    assert f"reload '{STEPS[0]}': FAILED: nginx: [emerg] unexpected end of file" in r.out
    assert f"restored; reload step(s) failed: '{STEPS[0]}'" in r.err
    # nginx -t failed: no reload of nginx; the other service's step still ran
    assert site["calls"].read_text().splitlines() == [
        "nginx -t",
        "supervisorctl reread",
        "supervisorctl update",
    ]


def test_reload_services_is_refused_below_a_target_root(site, run) -> None:
    env = _env(site)
    run("init", env=env, password=None)
    run("backup", env=env, password=None)
    r = run(
        "restore", "system", "--target-root", str(site["tmp"] / "new"), "--reload-services", "--yes",
        env=env, password=None,
    )  # fmt: skip
    assert r.code == 2 and "--reload-services" in r.err
    assert not (site["tmp"] / "new").exists() and not site["calls"].exists()
