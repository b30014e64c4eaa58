"""``nginx -t`` of a restored (untrusted) nginx configuration, as a drill runs it as root: nginx reads the
tokens read here, every file it opens or writes is the restored copy or below the check's folder, modules
and engines are never loaded; certificates are read for their expiry dates."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from safehold.sources.system import SystemSource
from safehold.sources.system.nginx import NginxSyntaxError, check_nginx, parse
from safehold.sources.system.restored import certificate_finding
from tests.drill.test_drill_health import make_cert

NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin")
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/system-deps.sh installs it)"
)


def test_the_tokenizer_reads_what_nginx_reads() -> None:
    text = (
        '# comment\nuser www-data;\nhttp {\n  log_format main \'$remote_addr "$request"\' "a\\"b";\n'
        '  map $uri $x { ~^/a\\.php$ 1; default "x y"; }\n  server { location ~ \\.php$ { set ${a}b c; } }\n}\n'
    )
    tree = parse(text, "t.conf")
    assert [s.name for s in tree] == ["user", "http"] and tree[1].line == 3 and tree[1].end_line == 7
    log_format, mapping, server = tree[1].block or []
    assert log_format.args == ["main", '$remote_addr "$request"', 'a"b'] and log_format.line == 4
    assert mapping.block is not None and [(s.name, s.args) for s in mapping.block] == [
        ("~^/a\\.php$", ["1"]),
        ("default", ["x y"]),
    ]
    location = (server.block or [])[0]
    assert location.args == ["~", "\\.php$"] and (location.block or [])[0].args == ["${a}b", "c"]
    for bad in ("http {", "}", "user a", '"a"b;', "; x;", "a 'b;"):
        with pytest.raises(NginxSyntaxError):
            parse(bad, "bad.conf")


def _restored(tmp_path: Path, files: dict[str, str]) -> tuple[SystemSource, Path, Path]:
    """A drill sandbox in which component 'system' (root /) restored ``files`` (paths below /etc/nginx...)."""
    box = tmp_path / "box"
    source = SystemSource("system", {"root": "/"})
    for live, text in files.items():
        rel = source.sandbox_path(live)
        assert rel is not None, live
        path = box / "system" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("->"):
            path.symlink_to(text[2:])
        else:
            path.write_text(text)
    return source, box, box / ".check-system"


def _where(source: SystemSource, box: Path):  # type: ignore[no-untyped-def]
    def where(path: str) -> Path | None:
        rel = source.sandbox_path(path)
        return None if rel is None else box / "system" / rel

    return where


@needs_nginx
def test_a_hostile_configuration_is_tested_inside_the_sandbox(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.conf").write_text("server { listen 9; }\n")
    source, box, work = _restored(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": (
                f"load_module /etc/nginx/evil.so;\npid {outside}/nginx.pid;\nerror_log {outside}/error.log;\n"
                "events {}\nhttp {\n  include /etc/nginx/sites-enabled/*;\n"
                f"  access_log {outside}/access.log;\n  ssl_engine evil;\n}}\n"
            ),
            "/etc/nginx/sites-available/app": "server {\n  listen 127.0.0.1:8080;\n  root /var/www/app;\n}\n",
            "/etc/nginx/sites-enabled/app": "->../sites-available/app",
            "/etc/nginx/sites-enabled/escape": f"->{outside}/secret.conf",  # a link out: not followed
            "/etc/nginx/sites-enabled/.hidden": "garbage",  # '*' does not match hidden files, as in nginx
            "/etc/nginx/evil.so": "not a module",
        },
    )
    findings, _ = check_nginx("system", "/etc/nginx/nginx.conf", _where(source, box), box, work, "/")
    (f,) = findings
    assert not f.ok and f.message.startswith("nginx configuration: /etc/nginx/sites-enabled/escape: "), f
    assert f"{outside}/secret.conf is held by no component" in f.message, f
    # without the escaping link the configuration is valid, and nothing was written outside the sandbox
    (box / "system/nginx/etc/nginx/sites-enabled/escape").unlink()
    shutil.rmtree(work)
    findings, _ = check_nginx("system", "/etc/nginx/nginx.conf", _where(source, box), box, work, "/")
    (f,) = findings
    assert (
        f.ok
        and f.message == "nginx -t: the configuration (2 file(s)) is valid; left out: load_module, ssl_engine"
    )
    assert list(outside.iterdir()) == [outside / "secret.conf"]
    assert (work / "elsewhere" / str(outside).lstrip("/") / "nginx.pid").exists()  # nginx -t writes it
    assert (work / "elsewhere" / str(outside).lstrip("/") / "access.log").exists()
    assert (work / "tmp/client_body_temp_path").is_dir()  # the temporary folders nginx creates
    main = (work / "conf/1.conf").read_text()
    assert '"load_module"' not in main and '"ssl_engine"' not in main
    assert str(outside) not in main.replace(f"{work}/elsewhere{outside}", "")  # only mapped copies
    assert main.splitlines()[5].startswith("include ")  # each directive on its own line


@needs_nginx
def test_nginx_messages_name_the_live_file_and_line(tmp_path: Path) -> None:
    source, box, work = _restored(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": "events {}\nhttp {\n  include conf.d/*.conf;\n}\n",
            "/etc/nginx/conf.d/a.conf": "\n\nserver {\n  listen 127.0.0.1:8080;\n  bogus_directive on;\n}\n",
        },
    )
    findings, _ = check_nginx("system", "/etc/nginx/nginx.conf", _where(source, box), box, work, "/")
    (f,) = findings
    assert not f.ok and 'unknown directive "bogus_directive" in /etc/nginx/conf.d/a.conf:5' in f.message, f


@needs_nginx
def test_certificates_nginx_needs_are_looked_for_in_the_restore(tmp_path: Path) -> None:
    source, box, work = _restored(
        tmp_path,
        {
            "/etc/nginx/nginx.conf": (
                "events {}\nhttp {\n  server {\n    listen 127.0.0.1:8443 ssl;\n"
                "    ssl_certificate /etc/ssl/certs/site.pem;\n    ssl_certificate_key /etc/ssl/private/site.key;\n"
                "  }\n}\n"
            ),
        },
    )
    findings, _ = check_nginx("system", "/etc/nginx/nginx.conf", _where(source, box), box, work, "/")
    (f,) = findings
    assert not f.ok and "/etc/ssl/certs/site.pem" in f.message and str(work) not in f.message, f


def test_certificate_expiry_and_garbage(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    make_cert(tmp_path / "ok.pem", "a.test", 100)
    make_cert(tmp_path / "soon.pem", "a.test", 3)
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\njunk\n-----END CERTIFICATE-----\n")
    ok = certificate_finding("tls", "/x/ok.pem", tmp_path / "ok.pem", 14, now)
    assert ok.ok and ok.message.startswith("certificate /x/ok.pem (a.test): valid until")
    soon = certificate_finding("tls", "/x/soon.pem", tmp_path / "soon.pem", 14, now)
    assert (
        not soon.ok and "expires in 2 day(s)" in soon.message and "less than the 14 required" in soon.message
    )
    later = certificate_finding("tls", "/x/ok.pem", tmp_path / "ok.pem", 14, now + dt.timedelta(days=200))
    assert not later.ok and "expired on" in later.message
    junk = certificate_finding("tls", "/x/junk.pem", tmp_path / "junk.pem", 14, now)
    assert not junk.ok and junk.message == "certificate /x/junk.pem: no PEM certificate in it"
    gone = certificate_finding("tls", "/x/gone.pem", tmp_path / "gone.pem", 14, now)
    assert not gone.ok and "No such file" in gone.message
