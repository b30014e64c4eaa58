"""Build a Laravel-like server below a temporary root, and read back the state a restore must reproduce.

:func:`build_tree` writes the file side of the server below ``root`` (the app with vendor/, node_modules/,
uploads, caches, .env, docs, scripts and a real git repository; nginx, PHP-FPM, supervisor, systemd, a
user crontab, a certbot-style Let's Encrypt tree with ``live/`` symlinks into ``archive/``).
:func:`seed_mysql` and :func:`seed_redis` fill a database and a private redis-server; the ``*_state``
functions read what a comparison needs (table checksums, routines, triggers, every Redis key with its
type, value and TTL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pymysql
import redis

from tests.helpers.pki import make_cert
from tests.sources.conftest import mysql_root

APP_REL = "var/www/app"
HOST = "app.example.test"
WWW = 33  # www-data on Debian
#: Paths below the app folder that the laravel preset leaves out of every component.
APP_EXCLUDED = (
    "vendor",
    "node_modules",
    "storage/framework/cache/data",
    "storage/framework/sessions/sess_1",
    "storage/framework/views/compiled.php",
    "storage/logs/laravel.log",
    "bootstrap/cache/config.php",
    "bootstrap/cache/routes-v7.php",
)


def _w(path: Path, text: str | bytes, mode: int = 0o644, owner: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    os.chmod(path, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, owner, owner)


def _chown_tree(path: Path, uid: int) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for n in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, n), uid, uid, follow_symlinks=False)
    os.chown(path, uid, uid)


def env_text(*, db: str, redis_port: int, retell: tuple[str, str], calcom: tuple[str, str]) -> str:
    return f"""APP_NAME=Praxis
APP_ENV=production
APP_KEY=base64:c2FmZWhvbGQtZTJlLXRlc3Qta2V5LTAxMjM0NTY3ODk=
APP_DEBUG=false
APP_URL=https://{HOST}

LOG_CHANNEL=stack

DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_PORT=3306
DB_DATABASE={db}
DB_USERNAME=root
DB_PASSWORD=

CACHE_DRIVER=redis
QUEUE_CONNECTION=redis
SESSION_DRIVER=redis
REDIS_HOST=127.0.0.1
REDIS_PASSWORD=null
REDIS_PORT={redis_port}

RETELL_API_KEY={retell[0]}
RETELL_BASE_URL={retell[1]}
CALCOM_API_KEY="{calcom[0]}"
CALCOM_BASE_URL={calcom[1]}
"""


def build_tree(root: Path, env: str) -> Path:
    """Write the server's files below ``root``; returns the app folder."""
    app = root / APP_REL
    _w(app / "artisan", "#!/usr/bin/env php\n<?php require __DIR__.'/vendor/autoload.php';\n", 0o755)
    _w(app / ".env", env, 0o640, owner=WWW)
    _w(app / ".env.example", "APP_NAME=Laravel\nDB_PASSWORD=\n")
    _w(app / "composer.json", '{"require": {"php": "^8.2", "laravel/framework": "^11.0"}}\n')
    _w(app / "composer.lock", '{"packages": []}\n')
    _w(app / "package.json", '{"private": true, "devDependencies": {"vite": "^5.0"}}\n')
    _w(app / "app/Models/User.php", "<?php\nnamespace App\\Models;\nclass User {}\n")
    _w(app / "app/Http/Controllers/BookingController.php", "<?php\n// Buchung für Kunden 📅\n")
    for name in ("app", "database", "queue", "services"):
        _w(app / f"config/{name}.php", f"<?php\nreturn ['{name}' => env('X_{name.upper()}')];\n")
    _w(app / "routes/web.php", "<?php\nRoute::get('/', fn () => view('welcome'));\n")
    _w(app / "resources/views/welcome.blade.php", "<h1>{{ config('app.name') }}</h1>\n")
    _w(app / "public/index.php", "<?php require __DIR__.'/../bootstrap/app.php';\n")
    _w(app / "public/favicon.ico", bytes(range(256)) * 4)
    _w(app / "bootstrap/app.php", "<?php return 1;\n")
    _w(app / "bootstrap/cache/.gitignore", "*\n!.gitignore\n")
    _w(app / "bootstrap/cache/config.php", "<?php return [];\n")
    _w(app / "bootstrap/cache/routes-v7.php", "<?php return [];\n")
    _w(app / "vendor/autoload.php", "<?php // composer\n")
    _w(app / "vendor/laravel/framework/src/Application.php", "<?php class Application {}\n" * 200)
    _w(app / "node_modules/lodash/lodash.js", "module.exports = {};\n" * 500)
    # storage: uploads (kept, owned by www-data), caches, sessions, views and logs (excluded)
    storage = app / "storage"
    _w(storage / "app/public/uploads/avatar-1.png", os.urandom(70_000))
    _w(storage / "app/public/uploads/Rechnung März.pdf", os.urandom(5_000))
    os.link(storage / "app/public/uploads/avatar-1.png", storage / "app/public/uploads/avatar-1-copy.png")
    _w(storage / "app/private/contract.txt", "signed\n", 0o600)
    _w(storage / "framework/cache/data/ab/cd/abcdef", "cached\n")
    _w(storage / "framework/cache/.gitignore", "*\n!data/\n!.gitignore\n")
    _w(storage / "framework/sessions/sess_1", "session\n")
    _w(storage / "framework/views/compiled.php", "<?php\n")
    _w(storage / "logs/laravel.log", "[2024-05-01] production.ERROR: x\n")
    _chown_tree(storage, WWW)
    (app / "public/storage").symlink_to("../storage/app/public")
    _w(app / "docs/README.md", "# Runbook\n\nRestart the queue after a deploy.\n")
    _w(app / "docs/architecture/overview.md", "Laravel + MariaDB + Redis.\n")
    _w(app / "scripts/deploy.sh", "#!/bin/sh\nset -e\nphp artisan migrate --force\n", 0o755)
    _git_repo(app)
    _etc(root)
    return app


def _git_repo(app: Path) -> None:
    (app / ".gitignore").write_text("/vendor\n/node_modules\n.env\n/storage/*.key\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.test",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.test",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(app.parent),
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=app, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "app", "config", "routes", "public/index.php", "artisan", "composer.json", ".gitignore")
    git("commit", "-q", "-m", "Initial commit")
    git("tag", "v1.0.0")
    git("add", "resources", "docs")
    git("commit", "-q", "-m", "Views and docs")
    git("remote", "add", "origin", "https://git.example.test/praxis/app.git")


def _etc(root: Path) -> None:
    etc = root / "etc"
    _w(etc / "nginx/nginx.conf", "user www-data;\nevents {}\nhttp { include /etc/nginx/sites-enabled/*; }\n")
    _w(
        etc / "nginx/sites-available/app",
        f"""server {{
    listen 443 ssl;
    server_name {HOST} www.{HOST};
    root /{APP_REL}/public;
    index index.php;
    ssl_certificate /etc/letsencrypt/live/{HOST}/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/{HOST}/privkey.pem;
    include /etc/letsencrypt/options-ssl-nginx.conf;
    ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem;
    location ~ \\.php$ {{
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.3-fpm-app.sock;
    }}
}}
""",
    )
    (etc / "nginx/sites-enabled").mkdir(parents=True)
    (etc / "nginx/sites-enabled/app").symlink_to("../sites-available/app")
    _w(etc / "nginx/snippets/fastcgi-php.conf", "fastcgi_split_path_info ^(.+?\\.php)(/.*)$;\n")
    _w(etc / "php/8.3/fpm/php-fpm.conf", "[global]\npid = /run/php/php8.3-fpm.pid\n")
    _w(etc / "php/8.3/fpm/php.ini", "memory_limit = 512M\nupload_max_filesize = 64M\n")
    _w(etc / "php/8.3/fpm/pool.d/www.conf", "[www]\nuser = www-data\nlisten = /run/php/php8.3-fpm.sock\n")
    _w(
        etc / "php/8.3/fpm/pool.d/app.conf",
        "[app]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.3-fpm-app.sock\n"
        "pm = dynamic\npm.max_children = 20\n",
    )
    _w(etc / "php/8.3/cli/php.ini", "memory_limit = -1\n")
    _w(etc / "supervisor/supervisord.conf", "[include]\nfiles = /etc/supervisor/conf.d/*.conf\n")
    _w(
        etc / "supervisor/conf.d/worker.conf",
        f"""[program:app-worker]
process_name=%(program_name)s_%(process_num)02d
command=php /{APP_REL}/artisan queue:work redis --sleep=3 --tries=3 --max-time=3600
autostart=true
autorestart=true
user=www-data
numprocs=2
redirect_stderr=true
stdout_logfile=/{APP_REL}/storage/logs/worker.log
""",
    )
    _w(
        root / "var/spool/cron/crontabs/www-data",
        f"# m h dom mon dow command\n* * * * * cd /{APP_REL} && php artisan schedule:run >> /dev/null 2>&1\n",
        0o600,
        owner=WWW,
    )
    _w(etc / "systemd/system/app-horizon.service", "[Service]\nExecStart=/usr/bin/php artisan horizon\n")
    wants = etc / "systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "app-horizon.service").symlink_to("/etc/systemd/system/app-horizon.service")
    _letsencrypt(etc / "letsencrypt")


#: RFC 7919's ffdhe2048 group, as certbot's ssl-dhparams.pem holds it.
FFDHE2048 = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def _certificate(folder: Path, n: int, days_from: int, days_until: int) -> tuple[bytes, bytes]:
    """A certificate for HOST and www.HOST (PEM, signed by a throwaway CA) and its private key."""
    pki = make_cert(folder, f"le{n}", days=days_until, not_before_days=days_from, names=(HOST, f"www.{HOST}"))
    cert, key = pki.cert_file.read_bytes(), pki.key_file.read_bytes()
    shutil.rmtree(folder)
    return cert, key


def _letsencrypt(le: Path) -> None:
    """certbot's layout: live/<host>/*.pem are relative symlinks to archive/<host>/*N.pem; certificate 1
    expired (archive keeps it), certificate 2 is current (80 days left)."""
    arch = le / "archive" / HOST
    for n, (start, end) in ((1, (-120, -30)), (2, (-10, 80))):
        cert, key = _certificate(le.parent / ".pki", n, start, end)
        _w(arch / f"cert{n}.pem", cert)
        _w(arch / f"chain{n}.pem", cert)
        _w(arch / f"fullchain{n}.pem", cert + cert)
        _w(arch / f"privkey{n}.pem", key, 0o600)
    live = le / "live" / HOST
    live.mkdir(parents=True)
    for name in ("cert", "chain", "fullchain", "privkey"):
        (live / f"{name}.pem").symlink_to(f"../../archive/{HOST}/{name}2.pem")
    _w(live / "README", "This directory contains your keys and certificates.\n")
    _w(le / "live/README", "Do not move these files.\n")
    _w(
        le / f"renewal/{HOST}.conf",
        f"version = 2.9.0\narchive_dir = /etc/letsencrypt/archive/{HOST}\n"
        f"cert = /etc/letsencrypt/live/{HOST}/cert.pem\n[renewalparams]\nauthenticator = nginx\n",
    )
    acct = le / "accounts/acme-v02.api.letsencrypt.org/directory/0123abcd"
    _w(acct / "private_key.json", '{"n": "secret", "e": "AQAB"}\n', 0o400)
    _w(acct / "meta.json", '{"creation_host": "app"}\n')
    _w(acct / "regr.json", '{"body": {}}\n')
    _w(le / "renewal-hooks/deploy/reload-nginx", "#!/bin/sh\nsystemctl reload nginx\n", 0o755)
    _w(
        le / "options-ssl-nginx.conf",
        "ssl_session_cache shared:le_nginx_SSL:10m;\nssl_protocols TLSv1.2 TLSv1.3;\n",
    )
    _w(le / "ssl-dhparams.pem", FFDHE2048)
    _w(le / "cli.ini", "max-log-backups = 0\n")


def reference_copy(root: Path, ref: Path) -> None:
    """``cp -a`` of ``root`` to ``ref``, then without what the laravel preset does not back up."""
    subprocess.run(["cp", "-a", str(root), str(ref)], check=True)
    app = ref / APP_REL
    for rel in APP_EXCLUDED:
        p = app / rel
        parent = os.lstat(p.parent)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        os.utime(p.parent, ns=(parent.st_atime_ns, parent.st_mtime_ns))


# ------------------------------------------------------------------------------------------- MariaDB
def seed_mysql(db: str) -> None:
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, "
            "note TEXT, photo BLOB, balance DECIMAL(10,2) DEFAULT 0, created_at DATETIME(6)) "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        cur.execute(
            "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT, action VARCHAR(20)) "
            "CHARACTER SET utf8mb4"
        )
        cur.execute(
            "CREATE TRIGGER customers_ai AFTER INSERT ON customers FOR EACH ROW "
            "INSERT INTO audit (customer_id, action) VALUES (NEW.id, 'insert')"
        )
        cur.execute(
            "CREATE FUNCTION greeting(n VARCHAR(100)) RETURNS VARCHAR(120) CHARACTER SET utf8mb4 "
            "DETERMINISTIC RETURN CONCAT('Grüß Gott, ', n, ' 👋')"
        )
        cur.execute(
            "CREATE PROCEDURE add_balance(IN cid INT, IN amount DECIMAL(10,2)) "
            "BEGIN UPDATE customers SET balance = balance + amount WHERE id = cid; END"
        )
        cur.execute("CREATE VIEW rich AS SELECT id, name FROM customers WHERE balance > 100")
        rows = [
            (
                f"Kunde {i} 😀 Ünïcødé ñ 中文",
                "Zeile\nmit\ttabs und 🚀" * (i % 5),
                os.urandom(64 + i) if i % 7 else None,
                f"2024-05-{1 + i % 28:02d} 10:11:12.{i:06d}",
            )
            for i in range(300)
        ]
        cur.executemany("INSERT INTO customers (name, note, photo, created_at) VALUES (%s, %s, %s, %s)", rows)
        cur.execute("CALL add_balance(5, 250.50)")
        cur.execute("CREATE TABLE empty_table (id INT PRIMARY KEY) ENGINE=InnoDB")


def mysql_state(db: str) -> dict[str, Any]:
    """Table checksums, views, routines and triggers of ``db`` (definitions, not definers)."""
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("SHOW FULL TABLES")
        tables = sorted(r[0] for r in cur.fetchall() if r[1] == "BASE TABLE")
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables) + " EXTENDED")
        sums = {r[0].split(".", 1)[1]: r[1] for r in cur.fetchall()}
        cur.execute("SELECT COUNT(*) FROM customers")
        count = cur.fetchone()[0]  # type: ignore[index]
        cur.execute(
            "SELECT routine_name, routine_type, routine_definition FROM information_schema.routines "
            "WHERE routine_schema=%s ORDER BY 1",
            (db,),
        )
        routines = cur.fetchall()
        cur.execute(
            "SELECT trigger_name, event_manipulation, action_statement FROM information_schema.triggers "
            "WHERE trigger_schema=%s ORDER BY 1",
            (db,),
        )
        triggers = cur.fetchall()
        cur.execute(
            "SELECT table_name, view_definition FROM information_schema.views WHERE table_schema=%s", (db,)
        )
        views = [(n, d.replace(f"`{db}`.", "")) for n, d in cur.fetchall()]
        cur.execute("SELECT greeting('Anna')")
        greeting = cur.fetchone()[0]  # type: ignore[index]
        cur.execute(
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "
            "WHERE schema_name=%s",
            (db,),
        )
        charset = cur.fetchone()
    return {
        "checksums": sums,
        "customers": count,
        "routines": routines,
        "triggers": triggers,
        "views": views,
        "greeting": greeting,
        "charset": charset,
    }


def drop_database(db: str) -> None:
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{db}`")


def database_exists(db: str) -> bool:
    with mysql_root() as c, c.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (db,))
        return cur.fetchone() is not None


def load_sql(db: str, sql: bytes) -> None:
    """Load a dump into ``db`` with the mariadb client (as a person following the export would)."""
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-u", "root", "--default-character-set=utf8mb4", db],
        input=sql,
        check=True,
        capture_output=True,
    )


# ------------------------------------------------------------------------------------------- Redis
def seed_redis(r: redis.Redis) -> None:
    """Keys of every type in db 0 (sessions, queues) and db 1 (cache), some with TTLs."""
    r.set("laravel_database_config", "value 😀")
    r.set("laravel_cache:counter", 42, ex=3600)
    r.set(b"bin:\x00\xff", os.urandom(300), px=7_200_000)
    r.setbit("bitmap:logins", 1000, 1)
    r.pfadd("hll:visitors", *[f"v{i}" for i in range(50)])
    r.rpush("queues:default", *[f'{{"job":"SendMail","n":{i}}}' for i in range(30)])
    r.hset("session:abc", mapping={"user_id": "7", "csrf": "tok", "ünï": "cødé"})
    r.expire("session:abc", 5400)
    r.sadd("tags:vip", "a", "b", "c")
    r.zadd("queues:default:delayed", {f"job{i}": 1_700_000_000 + i for i in range(20)})
    r.xadd("events", {"type": "login", "user": "7"})
    r.xadd("events", {"type": "logout", "user": "7"})
    r1 = redis.Redis(host="127.0.0.1", port=r.connection_pool.connection_kwargs["port"], db=1)
    r1.set("cache:page:/", "<html>" * 100, ex=600)
    r1.hset("cache:user:7", mapping={"name": "Anna"})
    r1.close()


def redis_state(port: int) -> dict[tuple[int, bytes], tuple[str, Any, int]]:
    """(db, key) -> (type, value, pttl) for every key of dbs 0-15."""
    out: dict[tuple[int, bytes], tuple[str, Any, int]] = {}
    for db in range(16):
        r = redis.Redis(host="127.0.0.1", port=port, db=db)
        try:
            for key in r.scan_iter(count=1000):
                kind = r.type(key).decode()
                value: Any
                if kind == "string":
                    value = r.get(key)
                elif kind == "list":
                    value = r.lrange(key, 0, -1)
                elif kind == "hash":
                    value = r.hgetall(key)
                elif kind == "set":
                    value = sorted(r.smembers(key))
                elif kind == "zset":
                    value = r.zrange(key, 0, -1, withscores=True)
                elif kind == "stream":
                    value = r.xrange(key)
                else:
                    value = r.dump(key)
                out[(db, key)] = (kind, value, int(r.pttl(key)))
        finally:
            r.close()
    return out


def assert_redis_equal(
    before: dict[tuple[int, bytes], tuple[str, Any, int]],
    after: dict[tuple[int, bytes], tuple[str, Any, int]],
    tolerance_ms: int = 60_000,
) -> None:
    assert set(after) == set(before)
    for k, (kind, value, ttl) in before.items():
        kind2, value2, ttl2 = after[k]
        assert (kind2, value2) == (kind, value), k
        if ttl < 0:
            assert ttl2 == ttl, k
        else:
            assert abs(ttl2 - ttl) <= tolerance_ms and ttl2 > 0, (k, ttl, ttl2)


def mysql_connect(db: str) -> pymysql.connections.Connection[Any]:
    return mysql_root(db)
