"""The system source: service configuration trees from a temporary root, restored into another root."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from safehold.sources.base import SourceContext
from safehold.sources.registry import source_class
from safehold.sources.system import SystemOptions, SystemSource

from .memcomponent import MemoryComponent

IS_ROOT = os.geteuid() == 0


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.chmod(p, mode)
    return p


def build_root(root: Path) -> None:
    write(root, "etc/nginx/nginx.conf", "events {}\n")
    write(root, "etc/nginx/sites-available/app", "server { listen 80; }\n")
    (root / "etc/nginx/sites-enabled").mkdir(parents=True)
    os.symlink("../sites-available/app", root / "etc/nginx/sites-enabled/app")
    write(root, "etc/php/8.2/fpm/pool.d/www.conf", "[www]\nuser = www-data\n")
    write(root, "etc/php/8.3/fpm/php-fpm.conf", "[global]\n")
    write(root, "etc/php/8.3/cli/php.ini", "not collected\n")
    write(root, "etc/supervisor/conf.d/worker.conf", "[program:queue]\ncommand=php artisan queue:work\n")
    crontab = write(root, "var/spool/cron/crontabs/www-data", "* * * * * php artisan schedule:run\n", 0o600)
    os.chmod(root / "var/spool/cron/crontabs", 0o1730)
    if IS_ROOT:
        os.chown(crontab, 33, 0)  # www-data
    write(root, "etc/crontab", "17 * * * * root cd / && run-parts /etc/cron.hourly\n")
    write(root, "etc/cron.d/backup", "0 3 * * * root safehold backup\n")
    write(root, "etc/cron.daily/logrotate", "#!/bin/sh\n", 0o755)
    le = "etc/letsencrypt"
    write(root, f"{le}/archive/example.com/cert1.pem", "CERT1\n")
    write(root, f"{le}/archive/example.com/privkey1.pem", "KEY1\n", 0o600)
    (root / f"{le}/live/example.com").mkdir(parents=True)
    os.symlink("../../archive/example.com/cert1.pem", root / f"{le}/live/example.com/cert.pem")
    os.symlink("../../archive/example.com/privkey1.pem", root / f"{le}/live/example.com/privkey.pem")
    write(root, f"{le}/renewal/example.com.conf", "cert = /etc/letsencrypt/live/example.com/cert.pem\n")
    # no redis, no systemd units, no letsencrypt accounts: recorded as missing


def snapshot_of(top: Path, rels: list[str]) -> dict[str, tuple[object, ...]]:
    """Type, content/target and mode of everything below the given relative roots."""
    seen: dict[str, tuple[object, ...]] = {}
    for rel in rels:
        start = top / rel
        paths = [start, *sorted(start.rglob("*"))] if start.is_dir() and not start.is_symlink() else [start]
        for p in paths:
            st = os.lstat(p)
            key = p.relative_to(top).as_posix()
            if stat.S_ISLNK(st.st_mode):
                seen[key] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                seen[key] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                seen[key] = ("file", p.read_bytes(), stat.S_IMODE(st.st_mode))
    return seen


COLLECTED = [
    "etc/nginx",
    "etc/php/8.2/fpm",
    "etc/php/8.3/fpm",
    "etc/supervisor",
    "var/spool/cron/crontabs/www-data",
    "etc/crontab",
    "etc/cron.d",
    "etc/cron.daily",
    "etc/letsencrypt/live",
    "etc/letsencrypt/archive",
    "etc/letsencrypt/renewal",
]


def test_registry_kind() -> None:
    assert source_class("system") is SystemSource


def test_backup_restore_into_other_root_is_identical(tmp_path: Path) -> None:
    src_root, dst_root = tmp_path / "src", tmp_path / "dst"
    build_root(src_root)
    src = SystemSource("system", SystemOptions(root=str(src_root)))
    mem = MemoryComponent(scratch=tmp_path / "scratch")
    logs: list[str] = []
    meta = src.backup(mem, SourceContext(log=logs.append))

    assert set(meta["missing"]) == {
        "redis:etc/redis",
        "systemd:etc/systemd/system",
        "letsencrypt:etc/letsencrypt/accounts",
        "letsencrypt:etc/letsencrypt/renewal-hooks",
    }
    assert meta["collectors"]["php_fpm"]["items"] == 2
    assert meta["collectors"]["cron"]["files"] == 4
    assert meta["holds_secrets"] == ["letsencrypt", "supervisor"]
    assert any("redis" in line for line in logs)
    assert "nginx/etc/nginx" in mem.trees and "cron/var/spool/cron/crontabs/www-data" in mem.files
    manifest = json.loads(mem.files["manifest.json"])
    assert not any("etc/php/8.3/cli" in json.dumps(e) for e in manifest["collectors"].values())

    plan = src.restore(mem, SourceContext(dry_run=True, options={"target_root": str(dst_root)}))
    assert not dst_root.exists()
    assert f"create {dst_root}/etc/letsencrypt/live/example.com/privkey.pem" in plan.actions
    assert f"create {dst_root}/var/spool/cron/crontabs/www-data" in plan.actions
    assert plan.details["overwritten"] == 0

    report = src.restore(mem, SourceContext(options={"target_root": str(dst_root)}))
    assert snapshot_of(dst_root, COLLECTED) == snapshot_of(src_root, COLLECTED)
    assert (dst_root / "etc/letsencrypt/live/example.com/privkey.pem").read_text() == "KEY1\n"
    assert not (dst_root / "etc/php/8.3/cli").exists()
    assert "nginx -t && systemctl reload nginx" in report.details["next_steps"]
    crontab = dst_root / "var/spool/cron/crontabs/www-data"
    assert stat.S_IMODE(crontab.stat().st_mode) == 0o600
    assert stat.S_IMODE(crontab.parent.stat().st_mode) == 0o1730
    assert crontab.stat().st_mtime_ns == (src_root / "var/spool/cron/crontabs/www-data").stat().st_mtime_ns
    if IS_ROOT:
        assert crontab.stat().st_uid == 33

    # restoring again over the result: the plan says what it overwrites
    again = src.restore(mem, SourceContext(dry_run=True, options={"target_root": str(dst_root)}))
    assert f"overwrite {dst_root}/etc/nginx/nginx.conf" in again.actions
    assert again.details["created"] == 0


def test_empty_root_records_everything_missing(tmp_path: Path) -> None:
    mem = MemoryComponent(scratch=tmp_path / "scratch")
    meta = SystemSource(
        "system", SystemOptions(root=str(tmp_path), extra={"logrotate": ["etc/logrotate.d"]})
    ).backup(mem, SourceContext())
    assert "logrotate:etc/logrotate.d" in meta["missing"]
    assert all(c["items"] == 0 for c in meta["collectors"].values())
    assert mem.trees == {} and list(mem.files) == ["manifest.json"]


def test_disabled_collector_and_options_validation(tmp_path: Path) -> None:
    build_root(tmp_path)
    mem = MemoryComponent(scratch=tmp_path / "scratch")
    meta = SystemSource("s", SystemOptions(root=str(tmp_path), letsencrypt=[], redis=[])).backup(
        mem, SourceContext()
    )
    assert "letsencrypt" not in meta["collectors"] and "redis" not in meta["collectors"]
    with pytest.raises(ValidationError):
        SystemOptions(nginx=["/etc/nginx"])
    with pytest.raises(ValidationError):
        SystemOptions(nginx=["etc/../../x"])
    with pytest.raises(ValidationError):
        SystemOptions.model_validate({"extra": {"nginx": ["x"]}})
    with pytest.raises(ValidationError):
        SystemOptions.model_validate({"unknown": 1})
    for name, field in SystemOptions.model_fields.items():
        assert field.description and field.examples, name
