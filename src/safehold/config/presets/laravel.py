"""The ``laravel`` preset: a Laravel application and the server around it.

Read from ``APP_DIR/.env`` (with :func:`~safehold.secretvalue.parse_dotenv`): ``DB_*`` (mysql,
mariadb, pgsql or sqlite), ``REDIS_*``, ``APP_URL`` (its host names the Let's Encrypt certificate),
``RETELL_API_KEY``/``RETELL_TOKEN`` and ``RETELL_BASE_URL``, ``CALCOM_API_KEY`` and ``CALCOM_BASE_URL``.
Passwords and keys become references to the .env (``{file = APP_DIR/.env, key = ...}``), never values.

Probed below ``root``: the nginx vhost serving APP_DIR, its PHP-FPM pool, supervisor programs running
``artisan queue:work``, crontab lines running ``artisan schedule:run``, ``etc/letsencrypt/live/<host>``.
Folders: APP_DIR/docs (or APP_DIR/../docs), APP_DIR/scripts, APP_DIR/.git.

Health checks proposed (the original plan's post-restore checklist, as far as it was found): the site
(``APP_URL``) and its admin panel (Filament's panel path, Nova's), the database exists and holds tables,
Redis answers, uploads can be written, each queue worker's supervisor program runs, the scheduler's cron
line is there, the site's certificate is valid for 14 more days.

Components (named as in the original plan): ``app`` (with its .git), ``config``, ``storage`` (without
caches, sessions, compiled views and logs, but with their folders), ``database``, ``redis``,
``system`` (nginx, PHP-FPM and PHP CLI, Redis and systemd configuration), ``cron`` and ``supervisor`` (the
``system`` kind restricted to one collector each, so a restore can target them alone), ``tls``,
``docs``, ``scripts``, ``git``, ``system-info``, ``retell``, ``calcom``. Profiles: ``quick`` (app,
database, config, storage), ``comprehensive`` (+ redis, system, cron, supervisor), ``full``
(everything), ``external`` (the SaaS components).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from safehold.config.healthchecks import HealthCheck
from safehold.config.presets import probe
from safehold.config.presets.discovery import (
    Discovery,
    Finding,
    build,
    default_repository,
    repository_table,
    system_component,
)
from safehold.secrets import SecretRef
from safehold.secretvalue import parse_dotenv

RETELL_DEFAULT = "https://api.retellai.com"
CALCOM_DEFAULT = "https://api.cal.com/v2"
CONFIG_FILES = (".env", ".env.example", "composer.json", "composer.lock", "package.json", "package-lock.json")
#: What storage/ holds that is rebuilt or worthless after a restore. The folders themselves (and the
#: .gitignore files Laravel ships in them) are kept: Laravel fails without storage/framework/views,
#: sessions, cache and storage/logs, and does not create them.
STORAGE_EXCLUDES = (
    "framework/cache/*",
    "framework/sessions/*",
    "framework/views/*",
    "framework/testing/*",
    "logs/*",
)
#: Certbot files outside live/archive/renewal that nginx vhosts include and renewals run.
LETSENCRYPT_SHARED = (
    "etc/letsencrypt/renewal-hooks",
    "etc/letsencrypt/options-ssl-nginx.conf",
    "etc/letsencrypt/ssl-dhparams.pem",
    "etc/letsencrypt/cli.ini",
    "etc/letsencrypt/live/README",
)
PROFILES: dict[str, tuple[list[str], dict[str, int]]] = {
    "quick": (
        ["app", "database", "config", "storage"],
        {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3},
    ),
    "comprehensive": (
        ["app", "database", "config", "storage", "redis", "system", "cron", "supervisor"],
        {"weekly": 4, "monthly": 12, "yearly": 3},
    ),
    "external": (["retell", "calcom"], {"last": 10, "monthly": 12}),
}
_NULLS = ("", "null")


def _secret(env_file: Path, key: str) -> dict[str, str]:
    return {"file": str(env_file), "key": key}


class _Laravel:
    def __init__(self, app_dir: Path, root: Path) -> None:
        self.app = app_dir
        self.root = root
        self.env_file = app_dir / ".env"
        self.env: dict[str, str] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self.found: list[Finding] = []
        self.missing: list[Finding] = []
        self.checks: list[dict[str, Any]] = []

    def check(self, table: dict[str, Any]) -> None:
        """Propose a health check built from what was found; one that does not validate (a supervisor
        program or host name that cannot be an argument) is left out and reported."""
        try:
            HealthCheck.model_validate(table)
        except ValidationError:
            self.no(f"health check {table['name']}", "what was found cannot be checked safely; left out")
            return
        self.checks.append(table)

    def ok(self, what: str, detail: str) -> None:
        self.found.append(Finding(what, detail))

    def no(self, what: str, reason: str) -> None:
        self.missing.append(Finding(what, reason))

    # ---------------------------------------------------------------------------------- application
    def application(self) -> None:
        a = str(self.app)
        if (self.app / "artisan").is_file():
            self.ok("laravel", f"application at {a}")
        else:
            self.no("laravel", f"no artisan in {a}: not a Laravel application folder?")
        self.components["app"] = {
            "kind": "files",
            "paths": [a],
            # .git stays in: a deployed checkout must come back ready for the next 'git pull'
            "excludes": [
                "vendor/",
                "node_modules/",
                f"{a}/storage/",
                f"{a}/bootstrap/cache/*.php",
                f"{a}/.env",
            ],
        }
        present = [str(self.app / n) for n in CONFIG_FILES if (self.app / n).is_file()]
        if (self.app / "config").is_dir():
            present.append(str(self.app / "config"))
        if present:
            self.components["config"] = {"kind": "files", "paths": present}
            self.ok("config", ", ".join(Path(p).name for p in present))
        else:
            self.no("config", f"no .env, composer.json, package.json or config/ in {a}")
        storage = self.app / "storage"
        if storage.is_dir():
            # uploads go below storage/app/public; Laravel writes logs, sessions and caches below storage/
            uploads = storage / "app" / "public"
            self.checks.append(
                {
                    "name": "uploads-writable",
                    "kind": "writable",
                    "path": str(uploads if uploads.is_dir() else storage),
                }
            )
            self.components["storage"] = {
                "kind": "files",
                "paths": [str(storage)],
                "excludes": [f"{storage}/{x}" for x in STORAGE_EXCLUDES] + ["!.gitignore"],
            }
            self.ok("storage", f"{storage} (without cache, sessions, compiled views, logs)")
        else:
            self.no("storage", f"no folder {storage}")

    def read_env(self) -> None:
        text = probe.read_text(self.env_file)
        if text is None:
            self.no(".env", f"cannot read {self.env_file}: database, Redis, TLS and SaaS settings unknown")
            return
        self.env = parse_dotenv(text)
        self.ok(".env", str(self.env_file))

    # ---------------------------------------------------------------------------------- services
    def database(self) -> None:
        if not self.env:
            return
        conn = self.env.get("DB_CONNECTION", "").lower()
        name = self.env.get("DB_DATABASE", "")
        if conn in ("mysql", "mariadb", "pgsql") and name:
            kind = "postgresql" if conn == "pgsql" else "mysql"
            comp: dict[str, Any] = {"kind": kind, "databases": [name]}
            if self.env.get("DB_HOST"):
                comp["host"] = self.env["DB_HOST"]
            port = self.env.get("DB_PORT", "")
            if port.isdigit():
                comp["port"] = int(port)
            if self.env.get("DB_USERNAME"):
                comp["user"] = self.env["DB_USERNAME"]
            detail = f"{kind} {name} at {comp.get('host', '127.0.0.1')}:{comp.get('port', 'default port')}"
            if self.env.get("DB_PASSWORD", "") not in _NULLS:
                comp["password"] = _secret(self.env_file, "DB_PASSWORD")
                detail += " (password: .env DB_PASSWORD, referenced)"
            if kind == "mysql" and self.env.get("DB_SOCKET"):
                comp["socket"] = self.env["DB_SOCKET"]
            self.components["database"] = comp
            self.ok("database", detail)
            self.checks.append({"name": "database", "kind": kind, "component": "database"})
        elif conn == "sqlite":
            path = Path(name) if name else self.app / "database" / "database.sqlite"
            if not path.is_absolute():
                path = self.app / path
            self.components["database"] = {"kind": "sqlite", "path": str(path)}
            self.ok("database", f"sqlite {path}")
            self.checks.append({"name": "database", "kind": "sqlite", "component": "database"})
        else:
            self.no("database", f"DB_CONNECTION={conn or '(unset)'} with DB_DATABASE={name or '(unset)'}")

    def redis(self) -> None:
        if not self.env:
            return
        host = self.env.get("REDIS_HOST", "")
        if host in _NULLS:
            self.no("redis", f"no REDIS_HOST in {self.env_file}")
            return
        comp: dict[str, Any] = {"kind": "redis", "host": host}
        port = self.env.get("REDIS_PORT", "")
        if port.isdigit():
            comp["port"] = int(port)
        if self.env.get("REDIS_USERNAME", "") not in _NULLS:
            comp["username"] = self.env["REDIS_USERNAME"]
        detail = f"{host}:{comp.get('port', 6379)}"
        if self.env.get("REDIS_PASSWORD", "") not in _NULLS:
            comp["password"] = _secret(self.env_file, "REDIS_PASSWORD")
            detail += " (password: .env REDIS_PASSWORD, referenced)"
        self.components["redis"] = comp
        self.ok("redis", detail)
        self.checks.append({"name": "redis", "kind": "redis", "component": "redis"})

    def web(self) -> str:
        """nginx, PHP-FPM, supervisor, cron and the system components; returns APP_URL's host."""
        root = self.root
        vhost = probe.nginx_vhost(root, self.app)
        if vhost:
            names = ", ".join(vhost.server_names) or "no server_name"
            self.ok("nginx vhost", f"{probe.rel(root, vhost.path)} ({names})")
            pool = probe.php_fpm_pool(root, vhost.fastcgi_pass)
            if pool is None:
                self.no("php-fpm pool", f"no pool under {root / 'etc/php/*/fpm/pool.d'}")
            else:
                how = "serves the vhost" if pool.matched else "default pool; no pool listens on fastcgi_pass"
                self.ok(
                    "php-fpm pool", f"{probe.rel(root, pool.path)} [{pool.name}] listen {pool.listen} ({how})"
                )
        else:
            self.no(
                "nginx vhost",
                f"no file in {root / 'etc/nginx'}/sites-enabled|sites-available|conf.d "
                f"with a root inside {self.app}",
            )
            self.no("php-fpm pool", "found through the vhost's fastcgi_pass, and there is no vhost")
        # the CLI's php.ini too: queue workers and the scheduler run PHP from the command line
        self.components["system"] = system_component(
            root, only=("nginx", "php_fpm", "redis", "systemd"), php_fpm=["etc/php/*/fpm", "etc/php/*/cli"]
        )
        workers = probe.supervisor_queue_workers(root)
        if workers:
            for w in workers:
                self.ok("supervisor", f"program:{w.name} x{w.numprocs} in {probe.rel(root, w.path)}")
                self.check({"name": f"queue-{w.name}", "kind": "supervisor", "program": f"{w.name}:*"})
            self.components["supervisor"] = system_component(root, only=("supervisor",))
        else:
            self.no(
                "supervisor", f"no program running 'artisan queue:work' in {root / 'etc/supervisor/conf.d'}"
            )
        entries = probe.schedule_cron_entries(root)
        if entries:
            for e in entries:
                self.ok("cron", f"{e.owner}: {e.line}")
            # the file the line was found in (a user's crontab in the spool, or cron.d), where a restore
            # puts it back
            self.check(
                {
                    "name": "scheduler",
                    "kind": "crontab",
                    "contains": "artisan schedule:run",
                    "path": str(entries[0].path),
                }
            )
            self.components["cron"] = system_component(root, only=("cron",))
        else:
            self.no("cron", "no crontab line running 'artisan schedule:run'")
        url = self.env.get("APP_URL", "")
        host = urlsplit(url).hostname or ""
        if host and url.startswith(("http://", "https://")):
            self.check({"name": "website", "kind": "http", "url": url})
            admin = probe.admin_path(self.app)
            if admin:
                self.check({"name": "admin", "kind": "http", "url": url.rstrip("/") + "/" + admin})
            if url.startswith("https://"):
                self.check({"name": "certificate", "kind": "tls", "host": host, "min_days": 14})
        live = probe.letsencrypt_live(root, host)
        if live is not None:
            le = "etc/letsencrypt"
            self.components["tls"] = system_component(
                root,
                only=("letsencrypt",),
                letsencrypt=[
                    f"{le}/live/{host}",
                    f"{le}/archive/{host}",
                    f"{le}/renewal/{host}.conf",
                    f"{le}/accounts",
                    *LETSENCRYPT_SHARED,
                ],
            )
            self.ok("tls", f"Let's Encrypt certificate {probe.rel(root, live)}")
        else:
            reason = f"no {root / 'etc/letsencrypt/live'}/{host}" if host else "no APP_URL host in .env"
            self.no("tls", reason)
        return host

    # ---------------------------------------------------------------------------------- folders, saas
    def folders(self) -> None:
        docs = next((d for d in (self.app / "docs", self.app.parent / "docs") if d.is_dir()), None)
        if docs:
            self.components["docs"] = {"kind": "files", "paths": [str(docs)]}
            self.ok("docs", str(docs))
        else:
            self.no("docs", f"no {self.app / 'docs'} or {self.app.parent / 'docs'}")
        scripts = self.app / "scripts"
        if scripts.is_dir():
            self.components["scripts"] = {"kind": "files", "paths": [str(scripts)]}
            self.ok("scripts", str(scripts))
        else:
            self.no("scripts", f"no {scripts}")
        if (self.app / ".git").exists():
            self.components["git"] = {"kind": "git", "path": str(self.app)}
            self.ok("git", f"{self.app / '.git'}")
        else:
            self.no("git", f"no {self.app / '.git'}")
        self.components["system-info"] = {"kind": "system-info", "root": str(self.root)}

    def saas(self) -> None:
        for name, label, kind, keys, base_key, default in (
            (
                "retell",
                "Retell",
                "saas/retell",
                ("RETELL_API_KEY", "RETELL_TOKEN"),
                "RETELL_BASE_URL",
                RETELL_DEFAULT,
            ),
            ("calcom", "Cal.com", "saas/calcom", ("CALCOM_API_KEY",), "CALCOM_BASE_URL", CALCOM_DEFAULT),
        ):
            key = next((k for k in keys if self.env.get(k, "") not in _NULLS), None)
            if key is None:
                self.no(name, f"no {' or '.join(keys)} in .env")
                continue
            base = self.env.get(base_key, "").rstrip("/") or default
            self.components[name] = {"kind": kind, "api_key": _secret(self.env_file, key), "base_url": base}
            self.ok(name, f"{label} API {base} (key: .env {key}, referenced)")

    # ---------------------------------------------------------------------------------- config
    def profiles(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pname, (wanted, retention) in PROFILES.items():
            names = [c for c in wanted if c in self.components]
            if names:
                out[pname] = {"components": names, "tags": [pname], "retention": retention}
            if pname == "comprehensive":
                out["full"] = {
                    "components": list(self.components),
                    "tags": ["full"],
                    "retention": {"monthly": 12, "yearly": 5},
                }
        return out


def discover_laravel(
    app_dir: Path,
    *,
    root: Path = Path("/"),
    home: Path | None = None,
    repo_url: str | None = None,
    repo_password: SecretRef | None = None,
) -> Discovery:
    """Inspect a Laravel application at ``app_dir`` and the server below ``root``; never raises for
    something missing (it is reported in ``Discovery.missing``). ``home`` places the default repository
    for a non-root user."""
    lv = _Laravel(app_dir, root)
    lv.read_env()
    lv.application()
    lv.database()
    lv.redis()
    lv.web()
    lv.folders()
    lv.saas()
    data: dict[str, Any] = {
        "version": 1,
        "repository": repository_table(repo_url or default_repository(home), repo_password),
        "components": lv.components,
        "profiles": lv.profiles(),
        "objectives": {"rpo": "24h", "rto": "1h"},
    }
    if "quick" in data["profiles"]:
        data["defaults"] = {"profile": "quick"}
    cadence = {"quick": "daily", "full": "weekly", "external": "daily"}
    data["schedule"] = {"backups": {p: c for p, c in cadence.items() if p in data["profiles"]}}
    if lv.checks:
        data["health_checks"] = lv.checks
    return Discovery(build(data), lv.found, lv.missing)
