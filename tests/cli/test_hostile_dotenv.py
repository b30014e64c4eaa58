"""A web user plants an option-file injection in the app's .env; root's nightly profile backup runs.

Through the real CLI: the database component fails with a message that names the component and the
secret reference (never the value), no dump program starts with the connection settings (the preflight's
`--version` check is not a start), no library is loaded, and the rest of the
profile is still backed up (the snapshot is partial, exit 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.sources.conftest import mysql_dbs, mysql_root  # noqa: F401 - fixture
from tests.sources.test_hostile_values import INJECTION, evil_plugin, tracer

PASS = "hostile dotenv passphrase"


def test_profile_backup_refuses_injected_dotenv_password(tmp_path: Path, run: Any, mysql_dbs: Any) -> None:  # noqa: F811
    plugins, loaded = evil_plugin(tmp_path)
    app = tmp_path / "var" / "www" / "app"
    app.mkdir(parents=True)
    (app / "index.php").write_text("<?php echo 'hi';")
    (app / ".env").write_text(f'APP_KEY=base64:abc\nDB_PASSWORD="{INJECTION.format(dir=plugins)}"\n')
    dump_tool, started = tracer(tmp_path, "mariadb-dump")
    cfg = tmp_path / "safehold.toml"
    cfg.write_text(f'''
version = 1
[repository]
url = "{tmp_path / "repo"}"
password = {{ env = "PROFILE_PASS" }}

[components.app]
kind = "files"
paths = ["{app}"]

[components.database]
kind = "mysql"
databases = ["{mysql_dbs()}"]
password = {{ file = "{app / ".env"}", key = "DB_PASSWORD" }}
dump_tool = "{dump_tool}"

[profiles.nightly]
components = ["app", "database"]
''')
    env = {"SAFEHOLD_CONFIG": str(cfg), "PROFILE_PASS": PASS, "SAFEHOLD_REPOSITORY": ""}
    assert run("init", env=env, password=None).code == 0
    r = run("backup", "--profile", "nightly", "--json", env=env, password=None)
    assert r.code == 1, r.err
    out = r.json()
    database = out["components"]["database"]
    assert database["status"] == "failed"
    assert "component database: password from file:" in database["error"]
    assert f"{app / '.env'}:DB_PASSWORD contains a line break (LF)" in database["error"]
    assert out["components"]["app"]["status"] == "ok" and out["partial"] is True
    for text in (r.out, r.err):
        assert "default-auth" not in text and str(plugins) not in text
    assert not started.exists() and not loaded.exists()
    assert os.listdir(tmp_path / "repo" / "snapshots")  # the rest of the profile was kept
