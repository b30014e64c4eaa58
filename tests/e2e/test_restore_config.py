"""Units of the whole-server restore that the e2e tests rely on: secrets read from below the target
root, and health checks redirected like the restore."""

from __future__ import annotations

from safehold.config.loader import validate
from safehold.operations.restore.profile import RestoreRequest, _check_targets, effective_config

ENV = {"file": "/var/www/app/.env", "key": "DB_PASSWORD"}
CONFIG = {
    "version": 1,
    "repository": {"url": "/srv/backup"},
    "components": {
        "app": {"kind": "files", "paths": ["/var/www/app"]},
        "database": {"kind": "mysql", "databases": ["shop"], "password": ENV, "socket": "/run/mysqld.sock"},
        "redis": {"kind": "redis", "password": {"file": "/etc/redis/pass"}},
        "retell": {"kind": "saas/retell", "api_key": {"file": "/var/www/app/.env", "key": "RETELL_API_KEY"}},
    },
}


def test_secret_files_held_by_files_components_are_read_below_the_target_root() -> None:
    cfg = validate(CONFIG, "test")
    assert effective_config(cfg, RestoreRequest(["all"])) is cfg
    moved = effective_config(cfg, RestoreRequest(["all"], target_root="/mnt/new"))
    assert moved.components["database"].options["password"] == {
        "file": "/mnt/new/var/www/app/.env",
        "key": "DB_PASSWORD",
    }
    assert moved.components["retell"].options["api_key"]["file"] == "/mnt/new/var/www/app/.env"
    # not held by a files component: left where it is
    assert moved.components["redis"].options["password"] == {"file": "/etc/redis/pass"}
    assert cfg.components["database"].options["password"] == ENV  # the original is untouched


def test_health_checks_follow_the_database_overrides() -> None:
    cfg = validate(CONFIG, "test")
    req = RestoreRequest(["all"], db={"host": "10.0.0.5", "port": 3307, "user": "admin", "database": "copy"})
    targets = _check_targets(cfg, req)
    assert targets["database"]["host"] == "10.0.0.5" and targets["database"]["port"] == 3307
    assert "socket" not in targets["database"]
    assert targets["database"]["database"] == "copy"  # --db-name: the check looks where the restore wrote
    assert targets["redis"]["username"] == "admin" and "user" not in targets["redis"]
    assert "database" not in targets["redis"]
    assert _check_targets(cfg, RestoreRequest(["all"]))["database"]["socket"] == "/run/mysqld.sock"
