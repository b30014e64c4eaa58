"""Where a drill's file checks look: a live path resolved to its restored copy, one name at a time, restored
symlinks followed in the live name space and never out of the sandbox (hostile restored trees), and each
kind's ``sandbox_path``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from safehold.sources.files import FilesSource
from safehold.sources.sandboxpath import OutsideSandbox, locate
from safehold.sources.system import SystemSource


def _box(tmp_path: Path) -> tuple[Path, Path]:
    """A sandbox holding one files component that restored /srv/app below ``root/app``."""
    root = tmp_path / "box"
    app = root / "app" / "srv/app"
    (app / "storage/logs").mkdir(parents=True)
    return root, app


def _where(root: Path) -> Callable[[str], Path | None]:
    src = FilesSource("app", {"paths": ["/srv/app"]})

    def where(path: str) -> Path | None:
        rel = src.sandbox_path(path)
        return None if rel is None else root / "app" / rel

    return where


def test_symlinks_are_followed_to_restored_copies(tmp_path: Path) -> None:
    root, app = _box(tmp_path)
    (app / "public").mkdir()
    (app / "public/storage").symlink_to("/srv/app/storage")  # Laravel's storage:link (absolute)
    (app / "logs").symlink_to("storage/logs")
    where = _where(root)
    assert locate("/srv/app/public/storage/logs", where, root) == app / "storage/logs"
    assert locate("/srv/app/logs/", where, root) == app / "storage/logs"
    assert locate("/srv/app/./storage/../storage/logs", where, root) == app / "storage/logs"


@pytest.mark.parametrize(
    "target",
    ["/etc", "../../../../../../../../etc", "/srv/other", "/srv/app/../../etc/shadow"],
)
def test_links_out_of_what_was_restored_are_refused(tmp_path: Path, target: str) -> None:
    root, app = _box(tmp_path)
    (app / "storage/evil").symlink_to(target)
    with pytest.raises(OutsideSandbox, match="held by no component"):
        locate("/srv/app/storage/evil", _where(root), root)


def test_loops_and_planted_folders_above_the_component(tmp_path: Path) -> None:
    root, app = _box(tmp_path)
    (app / "a").symlink_to("b")
    (app / "b").symlink_to("/srv/app/a")
    with pytest.raises(OutsideSandbox, match="too many symbolic links"):
        locate("/srv/app/a/x", _where(root), root)
    # a restored folder above the component's path that is a symlink (never looked at as a live path)
    outside = tmp_path / "outside"
    (outside / "app/storage").mkdir(parents=True)
    planted = root / "p"
    (planted / "srv").mkdir(parents=True)
    os.symlink(outside, planted / "srv/app")
    src = FilesSource("p", {"paths": ["/srv/app/storage"]})

    def where(path: str) -> Path | None:
        rel = src.sandbox_path(path)
        return None if rel is None else planted / rel

    with pytest.raises(OutsideSandbox, match="leads outside the sandbox"):
        locate("/srv/app/storage", where, root)


def test_sandbox_paths_of_files_and_system(tmp_path: Path) -> None:
    files = FilesSource("app", {"paths": ["/srv/app/", "/etc/app.conf"]})
    assert files.sandbox_path("/srv/app") == "srv/app"
    assert files.sandbox_path("/srv/app/x/y") == "srv/app/x/y"
    assert files.sandbox_path("/etc/app.conf") == "etc/app.conf"
    assert files.sandbox_path("/srv/application") is None and files.sandbox_path("/etc") is None
    system = SystemSource(
        "system", {"root": "/", "php_fpm": ["etc/php/*/fpm"], "extra": {"ssl": ["etc/ssl"]}}
    )
    assert system.sandbox_path("/etc/nginx/sites-enabled/app") == "nginx/etc/nginx/sites-enabled/app"
    assert (
        system.sandbox_path("/etc/php/8.3/fpm/pool.d/www.conf") == "php_fpm/etc/php/8.3/fpm/pool.d/www.conf"
    )
    assert system.sandbox_path("/etc/php/8.3/cli/php.ini") is None
    assert system.sandbox_path("/var/spool/cron/crontabs/www-data") == "cron/var/spool/cron/crontabs/www-data"
    assert system.sandbox_path("/etc/ssl/certs/x.pem") == "ssl/etc/ssl/certs/x.pem"
    assert system.sandbox_path("/etc/passwd") is None
    rooted = SystemSource("system", {"root": str(tmp_path)})
    assert rooted.sandbox_path(f"{tmp_path}/etc/redis/redis.conf") == "redis/etc/redis/redis.conf"
    assert rooted.sandbox_path("/etc/redis/redis.conf") is None
