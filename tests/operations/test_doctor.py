"""``safehold doctor`` against real servers: a least-privilege MariaDB user and PostgreSQL role that lack
privileges get the exact GRANTs to run; after running them (and fixing the other problems) the doctor
is clean. Also: an unresolvable secret is named without a value, a missing path and a missing program
are problems, the repository passphrase is checked, the fake SaaS server is probed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safehold.engine.format.repository import Repository
from tests.fakes.saas_calcom import FakeCalcom
from tests.fakes.saas_retell import FakeRetell
from tests.fakes.saas_seed import seed_calcom, seed_retell
from tests.fakes.saas_server import FakeSaasServer
from tests.helpers.fixtures import Result
from tests.sources.conftest import (  # noqa: F401 (fixtures)
    mysql_dbs,
    mysql_root,
    mysql_users,
    pg_admin,
    pg_dbs,
    pg_roles,
)

RETELL_KEY = "key_doctor_0123456789abcdef"
CAL_KEY = "cal_live_doctor_0123456789"
UNSET_ENV = "SAFEHOLD_DOCTOR_TEST_NEVER_SET"


@pytest.fixture
def calcom_url() -> Iterator[str]:
    app = FakeCalcom(api_key=CAL_KEY)
    seed_calcom(app)
    with FakeSaasServer(app) as server:
        yield server.url + "/v2"


@pytest.fixture
def retell_url() -> Iterator[str]:
    app = FakeRetell(api_key=RETELL_KEY)
    seed_retell(app)
    with FakeSaasServer(app) as server:
        yield server.url


def _config(
    tmp_path: Path,
    repo_path: Path,
    *,
    mysql: tuple[str, str, str],
    pg: tuple[str, str],
    retell: str,
    broken: bool,
) -> Path:
    db, user, password = mysql
    (tmp_path / "mysql.pass").write_text(password + "\n")
    (tmp_path / "retell.key").write_text(RETELL_KEY)
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "index.php").write_text("<?php echo 1;\n")
    code = tmp_path / "code"
    if not code.exists():
        subprocess.run(["git", "init", "-q", str(code)], check=True)
    paths = [str(app)] + ([str(tmp_path / "no-such-folder")] if broken else [])
    env_ref = f'{{ env = "{UNSET_ENV}" }}' if broken else f'{{ file = "{tmp_path / "retell.key"}" }}'
    program = "safehold-no-such-program" if broken else "cat"
    text = f"""
[repository]
url = "{repo_path}"

[components.app]
kind = "files"
paths = {json.dumps(paths)}

[components.database]
kind = "mysql"
databases = ["{db}"]
user = "{user}"
password = {{ file = "{tmp_path / "mysql.pass"}" }}

[components.pg]
kind = "postgresql"
databases = ["{pg[0]}"]
user = "{pg[1]}"

[components.cache]
kind = "redis"

[components.code]
kind = "git"
path = "{code}"

[components.crontab]
kind = "command"
command = ["{program}", "/etc/hostname"]
env = {{ TOKEN = {env_ref} }}

[components.voice]
kind = "saas/retell"
api_key = {{ file = "{tmp_path / "retell.key"}" }}
base_url = "{retell}"
"""
    path = tmp_path / "safehold.toml"
    path.write_text(text)
    path.chmod(0o600)  # others may not read it (the doctor reports that: test_doctor_permissions.py)
    return path


def test_doctor_finds_missing_grants_and_is_clean_after_them(
    tmp_path: Path,
    repo: Repository,
    repo_path: Path,
    run: Callable[..., Result],
    retell_url: str,
    pg_roles: Callable[..., str],  # noqa: F811 (set up before pg_dbs: the role is dropped after the database)
    pg_dbs: Callable[..., str],  # noqa: F811
    mysql_dbs: Callable[..., str],  # noqa: F811
    mysql_users: Callable[..., tuple[str, str]],  # noqa: F811
) -> None:
    db = mysql_dbs()
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        cur.execute("INSERT INTO t VALUES (1, 'a')")
    user, password = mysql_users(f"GRANT SELECT, SHOW VIEW ON `{db}`.* TO {{user}}")
    role = pg_roles()
    pgdb = pg_dbs()
    with pg_admin(pgdb) as c:
        c.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)")
        c.execute("INSERT INTO invoices (total) VALUES (1.5)")

    cfg = _config(
        tmp_path, repo_path, mysql=(db, user, password), pg=(pgdb, role), retell=retell_url, broken=True
    )
    r = run("--config", str(cfg), "doctor", password="not the passphrase")
    assert r.code == 1, r.out + r.err
    assert "doctor found" in r.err
    out = r.out
    grants = [
        f"GRANT TRIGGER, EVENT ON `{db}`.* TO '{user}'@'127.0.0.1';",
        f"GRANT SELECT ON mysql.proc TO '{user}'@'127.0.0.1';",
    ]
    for g in grants:
        assert g in out
    assert f"'{user}'@'127.0.0.1' lacks TRIGGER, EVENT on `{db}`.*" in out
    assert f'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "{role}";' in out
    assert "invoices" in out
    assert "no-such-folder does not exist" in out
    assert "safehold-no-such-program not found" in out
    assert f"components.crontab.env.TOKEN (env:{UNSET_ENV}) does not resolve" in out
    problem_lines = [line for line in out.splitlines() if line.startswith("PROBLEM  repository")]
    assert problem_lines and "passphrase" in r.out.lower() + r.err.lower()
    # what works is reported as ok
    assert "ok       cache          PING answered by 127.0.0.1:6379" in out
    assert f"{retell_url} answers GET /list-phone-numbers" in out
    assert "is a git repository" in out
    assert "mariadb-dump" in out and "pg_dump" in out
    # no secret value anywhere
    assert password not in out + r.err and RETELL_KEY not in out + r.err

    # run the GRANTs the doctor printed, fix the rest, and it is clean
    with mysql_root() as c, c.cursor() as cur:
        for g in grants:
            cur.execute(g)
    pg_grants = [line.strip() for line in out.splitlines() if " IN SCHEMA " in line]
    assert len(pg_grants) == 2  # tables and sequences (pg_dump reads sequence values too)
    with pg_admin(pgdb) as c:
        for g in pg_grants:
            c.execute(g)
    cfg = _config(
        tmp_path, repo_path, mysql=(db, user, password), pg=(pgdb, role), retell=retell_url, broken=False
    )
    r = run("--config", str(cfg), "doctor", "--json")
    assert r.code == 0, r.out + r.err
    doc = r.json()
    assert doc["ok"] is True
    assert all(ch["ok"] for ch in doc["checks"])
    subjects = {ch["subject"] for ch in doc["checks"]}
    assert subjects == {
        *(
            "repository",
            "room",
            "secrets",
            "permissions",
            "app",
            "database",
            "pg",
            "cache",
            "code",
            "crontab",
            "voice",
            "schedule",
        )
    }
    assert any(ch["check"] == "privileges" and ch["subject"] == "database" for ch in doc["checks"])
    assert password not in r.out and RETELL_KEY not in r.out


def test_doctor_wrong_api_key_and_unreachable_servers(
    tmp_path: Path,
    repo: Repository,
    repo_path: Path,
    run: Callable[..., Result],
    retell_url: str,
    calcom_url: str,
) -> None:
    (tmp_path / "wrong.key").write_text("key_wrong_not_valid")
    (tmp_path / "cal.key").write_text(CAL_KEY)
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(
        f"""
[repository]
url = "{repo_path}"

[components.voice]
kind = "saas/retell"
api_key = {{ file = "{tmp_path / "wrong.key"}" }}
base_url = "{retell_url}"
max_retries = 0

[components.calendar]
kind = "saas/calcom"
api_key = {{ file = "{tmp_path / "cal.key"}" }}
base_url = "{calcom_url}"

[components.database]
kind = "mysql"
databases = ["x"]
port = 1

[components.cache]
kind = "redis"
port = 1
"""
    )
    r = run("--config", str(cfg), "doctor", "--json")
    assert r.code == 1
    checks = {(c["subject"], c["ok"]) for c in r.json()["checks"]}
    assert ("repository", True) in checks
    assert {("voice", False), ("database", False), ("cache", False)} <= checks
    assert ("calendar", True) in checks and ("calendar", False) not in checks
    voice = next(c for c in r.json()["checks"] if c["subject"] == "voice" and not c["ok"])
    assert "401" in voice["message"] or "API key" in (voice["hint"] or "")
    assert "key_wrong_not_valid" not in r.out + r.err
