"""Discovery on a temporary server tree: everything named with the right values, no secret copied."""

from __future__ import annotations

import shutil
from pathlib import Path

from safehold.config.loader import parse_toml, validate
from safehold.config.presets import discover_generic, discover_laravel
from safehold.secrets import SecretRef
from safehold.sources.files import FilesSource
from safehold.sources.system import SystemSource
from tests.config.conftest import HOST, Server


def _found(disc: object, what: str) -> list[str]:
    return [f.detail for f in disc.found if f.what == what]  # type: ignore[attr-defined]


def _missing(disc: object) -> dict[str, str]:
    return {f.what: f.detail for f in disc.missing}  # type: ignore[attr-defined]


def test_laravel_discovery_names_everything(server: Server) -> None:
    panel = server.app / "app/Providers/Filament/AdminPanelProvider.php"
    panel.parent.mkdir(parents=True)
    panel.write_text("<?php\n return $panel->default()->id('admin')->path('backoffice')->login();\n")
    disc = discover_laravel(server.app, root=server.root, repo_url="/backups/repo")
    cfg = disc.config
    env = str(server.app / ".env")
    app = str(server.app)
    assert set(cfg.components) == {
        "app", "config", "storage", "database", "redis", "system", "supervisor", "cron", "tls",
        "docs", "scripts", "git", "system-info", "retell", "calcom",
    }  # fmt: skip
    c = {name: comp.options for name, comp in cfg.components.items()}
    assert cfg.components["database"].kind == "mysql"
    assert c["database"] == {
        "databases": ["askproai_db"],
        "host": "127.0.0.1",
        "port": 3307,
        "user": "askproai_user",
        "password": {"file": env, "key": "DB_PASSWORD"},
    }
    assert c["redis"] == {
        "host": "127.0.0.1",
        "port": 6380,
        "password": {"file": env, "key": "REDIS_PASSWORD"},
    }
    assert cfg.components["retell"].kind == "saas/retell"
    assert c["retell"] == {
        "api_key": {"file": env, "key": "RETELL_API_KEY"},
        "base_url": "https://api.retellai.com",
    }
    assert c["calcom"] == {
        "api_key": {"file": env, "key": "CALCOM_API_KEY"},
        "base_url": "https://cal.example.test/api/v2",
    }
    assert c["app"]["paths"] == [app]
    assert {"vendor/", "node_modules/", f"{app}/storage/", f"{app}/.env"} <= set(c["app"]["excludes"])
    assert c["config"]["paths"] == [
        f"{app}/.env", f"{app}/composer.json", f"{app}/composer.lock", f"{app}/package.json", f"{app}/config",
    ]  # fmt: skip
    assert c["storage"]["paths"] == [f"{app}/storage"]
    assert f"{app}/storage/framework/cache/*" in c["storage"]["excludes"]
    assert c["docs"] == {"paths": [f"{app}/docs"]}
    assert c["scripts"] == {"paths": [f"{app}/scripts"]}
    assert c["git"] == {"path": app}
    assert c["system-info"] == {"root": str(server.root)}
    # system components: all below the redirected root, each restricted to its collectors
    assert cfg.build_source("cron").options.collectors() == {
        "cron": ["var/spool/cron/crontabs/*", "etc/crontab", "etc/cron.*"]
    }
    assert list(cfg.build_source("supervisor").options.collectors()) == ["supervisor"]
    assert set(cfg.build_source("system").options.collectors()) == {"nginx", "php_fpm", "redis", "systemd"}
    tls = cfg.build_source("tls")
    assert isinstance(tls, SystemSource) and tls.options.root == str(server.root)
    assert tls.options.collectors()["letsencrypt"][:3] == [
        f"etc/letsencrypt/live/{HOST}", f"etc/letsencrypt/archive/{HOST}", f"etc/letsencrypt/renewal/{HOST}.conf",
    ]  # fmt: skip
    assert isinstance(cfg.build_source("app"), FilesSource)

    assert cfg.profiles["quick"].components == ["app", "database", "config", "storage"]
    assert cfg.profiles["comprehensive"].components == [
        "app", "database", "config", "storage", "redis", "system", "cron", "supervisor",
    ]  # fmt: skip
    assert set(cfg.profiles["full"].components) == set(cfg.components)
    assert cfg.profiles["external"].components == ["retell", "calcom"]
    assert cfg.defaults.profile == "quick"
    assert cfg.repository.url == "/backups/repo"
    # the original plan's post-restore checklist, as far as the server shows it
    assert [h.model_dump(exclude_defaults=True) for h in cfg.health_checks] == [
        {"name": "uploads-writable", "kind": "writable", "path": f"{app}/storage/app/public"},
        {"name": "database", "kind": "mysql", "component": "database"},
        {"name": "redis", "kind": "redis", "component": "redis"},
        {"name": "queue-askproai-worker", "kind": "supervisor", "program": "askproai-worker:*"},
        {
            "name": "scheduler",
            "kind": "crontab",
            "contains": "artisan schedule:run",
            "path": f"{server.root}/var/spool/cron/crontabs/www-data",
        },
        {"name": "website", "kind": "http", "url": f"https://{HOST}"},
        {"name": "admin", "kind": "http", "url": f"https://{HOST}/backoffice"},
        {"name": "certificate", "kind": "tls", "host": HOST},
    ]

    # the report says what it found where
    assert _found(disc, "nginx vhost") == [f"/etc/nginx/sites-enabled/askproai ({HOST}, www.{HOST})"]
    (pool,) = _found(disc, "php-fpm pool")
    assert "pool.d/askproai.conf [askproai]" in pool and "serves the vhost" in pool
    assert _found(disc, "supervisor") == [
        "program:askproai-worker x4 in /etc/supervisor/conf.d/askproai-worker.conf"
    ]
    (cron,) = _found(disc, "cron")
    assert cron.startswith("www-data: * * * * * cd /var/www/app && php artisan schedule:run")
    assert _found(disc, "tls") == [f"Let's Encrypt certificate /etc/letsencrypt/live/{HOST}"]
    assert disc.missing == []


def test_laravel_toml_never_contains_a_secret_and_loads_back(server: Server) -> None:
    disc = discover_laravel(server.app, root=server.root, repo_url="/backups/repo")
    text = disc.config.to_toml()
    for secret in server.secrets:
        assert secret not in text
        assert secret not in disc.report()
    assert validate(parse_toml(text)) == disc.config
    # the references resolve to the .env's values
    db_ref = SecretRef.model_validate(disc.config.components["database"].options["password"])
    assert db_ref.resolve() == server.secrets[0]


def test_laravel_reports_what_is_missing(server: Server, tmp_path: Path) -> None:
    for gone in ("etc/nginx", "etc/supervisor", "var/spool/cron", "etc/letsencrypt"):
        shutil.rmtree(server.root / gone)
    shutil.rmtree(server.app / "docs")
    shutil.rmtree(server.app / ".git")
    (server.app / ".env").write_text("APP_URL=https://nowhere.test\nDB_CONNECTION=pgsql\nDB_DATABASE=app\n")
    disc = discover_laravel(server.app, root=server.root, repo_url=str(tmp_path / "repo"))
    missing = _missing(disc)
    assert "no file in" in missing["nginx vhost"] and "php-fpm pool" in missing
    assert "queue:work" in missing["supervisor"]
    assert "schedule:run" in missing["cron"]
    assert "live/nowhere.test" in missing["tls"]
    assert set(missing) >= {"docs", "git", "redis", "retell", "calcom"}
    cfg = disc.config
    assert cfg.components["database"].kind == "postgresql"
    assert "password" not in cfg.components["database"].options
    assert not {"tls", "cron", "supervisor", "retell", "calcom", "redis", "docs", "git"} & set(cfg.components)
    assert "external" not in cfg.profiles
    assert cfg.profiles["comprehensive"].components == ["app", "database", "config", "storage", "system"]


def test_laravel_without_env_and_fallback_pool(server: Server, tmp_path: Path) -> None:
    (server.root / "etc/php/8.3/fpm/pool.d/askproai.conf").unlink()
    (server.app / ".env").unlink()
    disc = discover_laravel(server.app, root=server.root, repo_url=str(tmp_path / "repo"))
    assert "cannot read" in _missing(disc)[".env"]
    (pool,) = _found(disc, "php-fpm pool")
    assert "www.conf [www]" in pool and "default pool" in pool
    assert "database" not in disc.config.components
    assert disc.config.profiles["quick"].components == ["app", "config", "storage"]


def test_laravel_retell_token_and_base_url(server: Server, tmp_path: Path) -> None:
    (server.app / ".env").write_text(
        "RETELL_TOKEN=tok_abc123\nRETELL_BASE_URL=http://127.0.0.1:9999\nDB_CONNECTION=sqlite\nDB_DATABASE=database/app.sqlite\n"
    )
    disc = discover_laravel(server.app, root=server.root, repo_url=str(tmp_path / "repo"))
    opts = disc.config.components["retell"].options
    assert opts["api_key"] == {"file": str(server.app / ".env"), "key": "RETELL_TOKEN"}
    assert opts["base_url"] == "http://127.0.0.1:9999"
    assert disc.config.components["database"].options == {"path": str(server.app / "database/app.sqlite")}
    assert "tok_abc123" not in disc.config.to_toml()


def test_generic_preset(server: Server, tmp_path: Path) -> None:
    disc = discover_generic(server.root, paths=[server.app / "docs", tmp_path / "absent"], repo_url="/r")
    cfg = disc.config
    assert set(cfg.components) == {"system", "system-info", "files"}
    assert cfg.components["files"].options == {"paths": [str(server.app / "docs")]}
    assert cfg.build_source("system").options.root == str(server.root)
    assert cfg.profiles["quick"].components == ["files", "system"]
    assert set(cfg.profiles["full"].components) == set(cfg.components)
    found = {f.what for f in disc.found}
    assert {"nginx", "php_fpm", "supervisor", "cron", "letsencrypt"} <= found
    missing = _missing(disc)
    assert "systemd" in missing and "absent" in missing["files"]
    # nothing Laravel-specific
    text = cfg.to_toml()
    assert "artisan" not in text and ".env" not in text and "mysql" not in text
    for secret in server.secrets:
        assert secret not in text


def test_laravel_leaves_out_checks_it_cannot_write_safely(server: Server) -> None:
    """A supervisor program named like an option (the conf.d files are input) gets no check."""
    conf = server.root / "etc/supervisor/conf.d/evil.conf"
    conf.write_text("[program:--help x]\ncommand=php /var/www/app/artisan queue:work\n")
    disc = discover_laravel(server.app, root=server.root, repo_url="/backups/repo")
    programs = [h.program for h in disc.config.health_checks if h.kind == "supervisor"]
    assert programs == ["askproai-worker:*"]
    assert "cannot be checked safely" in _missing(disc)["health check queue---help x"]


def test_laravel_sqlite_and_nova_checks(server: Server) -> None:
    (server.app / ".env").write_text("APP_URL=http://shop.test\nDB_CONNECTION=sqlite\n")
    (server.app / "config/nova.php").write_text("<?php return ['path' => '/nova-admin'];\n")
    checks = {h.name: h for h in discover_laravel(server.app, root=server.root).config.health_checks}
    assert checks["database"].kind == "sqlite" and checks["database"].component == "database"
    assert checks["admin"].url == "http://shop.test/nova-admin"
    assert "certificate" not in checks  # http: no certificate to check
