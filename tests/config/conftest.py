"""A temporary Laravel-like server tree for the discovery tests."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

DB_PASSWORD = "s3cr3t-Db-pa55"
REDIS_PASSWORD = "r3dis-Pa55-xyz"
RETELL_KEY = "key_retell_0123456789abcdef"
CALCOM_KEY = "cal_live_fedcba9876543210"
HOST = "app.example.test"


@dataclass
class Server:
    root: Path
    app: Path
    secrets: tuple[str, ...]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Server:
    """An app under root/var/www/app with .env, nginx, php-fpm, supervisor, cron and Let's Encrypt."""
    root = tmp_path / "srv"
    app = root / "var" / "www" / "app"
    write(app / "artisan", "#!/usr/bin/env php\n")
    write(
        app / ".env",
        f"""
        APP_NAME=AskProAI
        APP_URL=https://{HOST}
        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_PORT=3307
        DB_DATABASE=askproai_db
        DB_USERNAME=askproai_user
        DB_PASSWORD="{DB_PASSWORD}"
        REDIS_HOST=127.0.0.1
        REDIS_PASSWORD={REDIS_PASSWORD}
        REDIS_PORT=6380
        RETELL_API_KEY={RETELL_KEY}
        CALCOM_API_KEY={CALCOM_KEY}
        CALCOM_BASE_URL=https://cal.example.test/api/v2/
        """,
    )
    write(app / "composer.json", "{}\n")
    write(app / "composer.lock", "{}\n")
    write(app / "package.json", "{}\n")
    write(app / "config" / "app.php", "<?php return [];\n")
    write(app / "storage" / "app" / "public" / "logo.png", "png")
    write(app / "storage" / "framework" / "cache" / "x", "cache")
    write(app / "docs" / "index.md", "# docs\n")
    write(app / "scripts" / "deploy.sh", "#!/bin/sh\n")
    (app / ".git").mkdir()
    # nginx: a default site elsewhere, and the app's vhost in sites-available, enabled by a symlink
    write(root / "etc/nginx/sites-available/default", "server { listen 80; root /var/www/html; }\n")
    vhost = write(
        root / "etc/nginx/sites-available/askproai",
        f"""
        server {{
            listen 443 ssl;
            server_name {HOST} www.{HOST};
            # root /somewhere/else;
            root /var/www/app/public;
            ssl_certificate /etc/letsencrypt/live/{HOST}/fullchain.pem;
            location ~ \\.php$ {{
                include snippets/fastcgi-php.conf;
                fastcgi_pass unix:/run/php/php8.3-fpm-askproai.sock;
            }}
        }}
        """,
    )
    (root / "etc/nginx/sites-enabled").mkdir(parents=True)
    os.symlink(vhost, root / "etc/nginx/sites-enabled/askproai")
    write(root / "etc/php/8.3/fpm/pool.d/www.conf", "[www]\nlisten = /run/php/php8.3-fpm.sock\n")
    write(
        root / "etc/php/8.3/fpm/pool.d/askproai.conf",
        "[askproai]\nuser = www-data\nlisten = /run/php/php8.3-fpm-askproai.sock\n",
    )
    write(
        root / "etc/supervisor/conf.d/askproai-worker.conf",
        """
        [program:askproai-worker]
        process_name=%(program_name)s_%(process_num)02d
        command=php /var/www/app/artisan queue:work redis --sleep=3 --tries=3
        numprocs=4
        user=www-data
        """,
    )
    write(root / "etc/supervisor/conf.d/other.conf", "[program:other]\ncommand=/usr/bin/other\n")
    write(
        root / "var/spool/cron/crontabs/www-data",
        """
        # m h dom mon dow command
        # * * * * * old disabled line artisan schedule:run
        * * * * * cd /var/www/app && php artisan schedule:run >> /dev/null 2>&1
        """,
    )
    write(root / "etc/cron.d/certbot", "0 */12 * * * root certbot -q renew\n")
    live = root / "etc/letsencrypt/live" / HOST
    archive = root / "etc/letsencrypt/archive" / HOST
    write(archive / "fullchain1.pem", "cert")
    write(archive / "privkey1.pem", "key")
    live.mkdir(parents=True)
    os.symlink(f"../../archive/{HOST}/fullchain1.pem", live / "fullchain.pem")
    os.symlink(f"../../archive/{HOST}/privkey1.pem", live / "privkey.pem")
    write(root / f"etc/letsencrypt/renewal/{HOST}.conf", "version = 2.9.0\n")
    return Server(root, app, (DB_PASSWORD, REDIS_PASSWORD, RETELL_KEY, CALCOM_KEY))
