"""Secrets never become syntax: hostile values from ``.env``, secret files and stored names, per source.

The web user can usually write the application's ``.env``; a snapshot (and the names in it) can be
written by anyone who holds a passphrase. Each test feeds such a value to a real source against the real
server and proves that it is refused before any program starts, naming the component and the secret
reference but never the value; the legitimate passwords test proves that quoting survives the real tools.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from safehold import syntax
from safehold.errors import SafeholdError, UnsafeValue
from safehold.sources.base import SourceContext
from safehold.sources.command import CommandSource
from safehold.sources.git.restore import _parse_remotes
from safehold.sources.mysql import MySQLSource
from safehold.sources.postgresql import PostgreSQLSource
from safehold.sources.redis import RedisSource
from tests.sources.conftest import mysql_root, pg_admin, rand
from tests.sources.memcomponent import MemoryComponent

#: The issue's payload, as a web user writes it into .env (dotenv turns \n inside double quotes into LF).
INJECTION = r"x\nplugin-dir={dir}\ndefault-auth=evil\n#"
#: What safehold must carry intact: quotes, backslashes, comment and option characters, spaces, unicode.
LEGIT = "q\"uo'te \\back\\\\slash #hash =eq ;semi $dollar ä€😀 --opt=1 \\n"


def tracer(tmp_path: Path, real: str) -> tuple[str, Path]:
    """A wrapper program that records that it started (and its PGPASSWORD), then runs ``real``.

    A bare ``--version`` (the preflight's tool check: no option file, no password, no connection) is not
    recorded: the tests ask whether the tool ever ran with the connection settings."""
    mark = tmp_path / f"{Path(real).name}.started"
    wrapper = tmp_path / f"trace-{Path(real).name}"
    tool = shutil.which(real)
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$#" = 1 ] && [ "$1" = --version ]; then exec {tool} --version; fi\n'
        f'printf "%s" "$PGPASSWORD" > {mark}\nexec {tool} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return str(wrapper), mark


def evil_plugin(tmp_path: Path) -> tuple[Path, Path]:
    """``(plugin folder, marker)``: a shared library that creates the marker when anything loads it."""
    folder, mark = tmp_path / "plugins", tmp_path / "PLUGIN-LOADED"
    folder.mkdir()
    if shutil.which("gcc") is not None:
        source = folder / "evil.c"
        source.write_text(
            "#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void pwn(void) {"
            f' int fd = open("{mark}", O_CREAT | O_WRONLY, 0644); if (fd >= 0) close(fd); }}\n'
        )
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "evil.so"), str(source)], check=True)
    return folder, mark


def dotenv(tmp_path: Path, value: str) -> dict[str, str]:
    """A Laravel-style .env holding ``DB_PASSWORD="<value>"`` and the reference to it."""
    env = tmp_path / "app" / ".env"
    env.parent.mkdir(exist_ok=True)
    env.write_text(f'APP_NAME=Shop\nDB_HOST=127.0.0.1\nDB_PASSWORD="{value}"\nAPP_KEY=base64:abc\n')
    return {"file": str(env), "key": "DB_PASSWORD"}


def assert_refused(exc: pytest.ExceptionInfo[SafeholdError], *needles: str, value: str) -> None:
    text = f"{exc.value.message}\n{exc.value.hint}"
    assert isinstance(exc.value, UnsafeValue), text
    for needle in needles:
        assert needle in text, (needle, text)
    for part in re.split(r"[\r\n\x00]", value):
        assert len(part) < 5 or part not in text  # never the value, nor a part of it
    assert exc.value.exit_code == 2


# --- MySQL/MariaDB -----------------------------------------------------------------------------------


@pytest.fixture
def hostile_mysql_user(mysql_dbs: Any) -> Any:
    """A database and a user whose password *is* the injected value (a database user can set its own
    password): without the fix, pymysql logs in and the dump program reads the injected options."""
    made: list[str] = []

    def make(password: str) -> tuple[str, str]:
        db, user = mysql_dbs(), rand("sh_u")
        made.append(user)
        with mysql_root() as c, c.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `{db}`.* TO '{user}'@'127.0.0.1'")
            cur.execute(f"GRANT SELECT ON mysql.proc TO '{user}'@'127.0.0.1'")
            cur.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v TEXT)")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 'one'), (2, 'two')")
        return db, user

    yield make
    with mysql_root() as c, c.cursor() as cur:
        for user in made:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def test_mysql_option_file_injection_from_dotenv_is_refused_before_any_tool(
    tmp_path: Path, hostile_mysql_user: Callable[[str], tuple[str, str]]
) -> None:
    plugins, loaded = evil_plugin(tmp_path)
    ref = dotenv(tmp_path, INJECTION.format(dir=plugins))
    password = INJECTION.format(dir=plugins).replace("\\n", "\n")
    db, user = hostile_mysql_user(password)
    dump_tool, dump_started = tracer(tmp_path, "mariadb-dump")
    client_tool, client_started = tracer(tmp_path, "mariadb")
    options = {
        "databases": [db],
        "user": user,
        "password": ref,
        "dump_tool": dump_tool,
        "client_tool": client_tool,
    }
    mem = MemoryComponent()
    with pytest.raises(SafeholdError) as exc:
        MySQLSource("database", options).backup(mem, SourceContext())
    assert_refused(
        exc, "component database: password", f"file:{ref['file']}:DB_PASSWORD", "line break", value=password
    )
    assert not dump_started.exists() and not loaded.exists() and mem.files == {}

    # the restore client: the same password given as a restore option
    good = MySQLSource("database", {"databases": [db]})
    good.backup(mem, SourceContext())
    with pytest.raises(SafeholdError) as exc:
        good.restore(mem, SourceContext(options={"database": rand("sh_test"), "user": user, "password": ref}))
    assert_refused(exc, "component database: password", "DB_PASSWORD", value=password)
    assert not client_started.exists() and not loaded.exists()


@pytest.mark.parametrize(
    ("where", "text", "char"),
    [
        ("file", "s3cr3tA\rplugin-dir=/tmp", "carriage return (CR)"),
        ("file", "s3cr3tA\ns3cr3tB", "line break (LF)"),
        ("dotenv", "s3cr3tA\x00s3cr3tB", "NUL"),
        ("env", "pass\x00word", None),  # the environment cannot hold NUL: Python refuses before us
    ],
)
def test_mysql_cr_lf_nul_in_password_and_settings(
    tmp_path: Path, mysql_dbs: Any, monkeypatch: pytest.MonkeyPatch, where: str, text: str, char: str | None
) -> None:
    if char is None:
        with pytest.raises(ValueError, match="null"):
            monkeypatch.setenv("SH_HOSTILE", text)
        return
    if where == "file":
        (tmp_path / "pw").write_text(text + "\n")
        ref: dict[str, str] = {"file": str(tmp_path / "pw")}
    else:
        ref = dotenv(tmp_path, text)
    dump_tool, started = tracer(tmp_path, "mariadb-dump")
    src = MySQLSource("db", {"databases": [mysql_dbs()], "password": ref, "dump_tool": dump_tool})
    with pytest.raises(SafeholdError) as exc:
        src.backup(MemoryComponent(), SourceContext())
    assert_refused(exc, "component db: password from file:", char, value=text)
    assert not started.exists()
    # settings other than the password are checked for the option file too (e.g. from --db-host / --set)
    for setting in ("host", "user", "socket"):
        src = MySQLSource("db", {"databases": ["x"], setting: "a\nplugin-dir=/tmp", "dump_tool": dump_tool})
        with pytest.raises(UnsafeValue, match=f"component db: {setting} contains a line break"):
            src.backup(MemoryComponent(), SourceContext())
    assert not started.exists()


def test_mysql_legitimate_password_survives_option_file(
    tmp_path: Path, mysql_dbs: Any, mysql_users: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, target = mysql_dbs(), mysql_dbs(create=False)
    user, _ = mysql_users(
        f"GRANT ALL ON `{db}`.* TO {{user}}",
        f"GRANT ALL ON `{target}`.* TO {{user}}",
        "GRANT SELECT ON mysql.proc TO {user}",
    )
    with mysql_root() as c, c.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (LEGIT,))
        cur.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v TEXT)")
        cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 'one')")
    monkeypatch.setenv("SH_LEGIT_PW", LEGIT)
    src = MySQLSource("database", {"databases": [db], "user": user, "password": {"env": "SH_LEGIT_PW"}})
    mem = MemoryComponent()
    src.backup(mem, SourceContext())  # pymysql and mariadb-dump both log in with it
    src.restore(mem, SourceContext(options={"database": target}))  # and the mariadb client
    with mysql_root(target) as c, c.cursor() as cur:
        cur.execute("SELECT v FROM t")
        assert cur.fetchall() == (("one",),)
    assert not any(LEGIT in line for line in mem.lines)


def test_mysql_stored_database_name_is_never_an_option(tmp_path: Path, mysql_dbs: Any) -> None:
    """A dump folder named like an option (a snapshot is written by any passphrase holder) is a name."""
    db, sentinel = mysql_dbs(), rand("sh_sentinel")
    with mysql_root(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (7)")
    mem = MemoryComponent()
    MySQLSource("database", {"databases": [db], "schema_only": False}).backup(mem, SourceContext())
    hostile = f"--init-command=CREATE DATABASE {sentinel}"
    mem.files = {p.replace(db, hostile, 1): data for p, data in mem.files.items()}
    try:
        MySQLSource("database", {"databases": [db]}).restore(mem, SourceContext())
        with mysql_root(hostile) as c, c.cursor() as cur:
            cur.execute("SELECT id FROM t")
            assert cur.fetchall() == ((7,),)
        with mysql_root() as c, c.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (sentinel,))
            assert cur.fetchall() == ()
    finally:
        with mysql_root() as c, c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{hostile}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{sentinel}`")


# --- PostgreSQL ----------------------------------------------------------------------------------------


def test_postgresql_password_with_line_break_is_refused(tmp_path: Path, pg_dbs: Any) -> None:
    ref = dotenv(tmp_path, r"pw\nhost=/tmp")
    pg_dump, started = tracer(tmp_path, "pg_dump")
    src = PostgreSQLSource("pg", {"databases": [pg_dbs()], "password": ref, "pg_dump": pg_dump})
    with pytest.raises(SafeholdError) as exc:
        src.backup(MemoryComponent(), SourceContext())
    assert_refused(exc, "component pg: password", "DB_PASSWORD", "line break", value="pw\nhost=/tmp")
    assert not started.exists()
    for setting in ("host", "user"):
        src = PostgreSQLSource("pg", {"databases": ["x"], setting: "a\x00b", "pg_dump": pg_dump})
        with pytest.raises(UnsafeValue, match=f"component pg: {setting} contains a NUL"):
            src.backup(MemoryComponent(), SourceContext())


def test_postgresql_legitimate_password_reaches_the_tools_intact(
    tmp_path: Path, pg_dbs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pg_dbs()
    with pg_admin(db) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pg_dump, started = tracer(tmp_path, "pg_dump")
    monkeypatch.setenv("SH_LEGIT_PW", LEGIT)
    opts = {"databases": [db], "password": {"env": "SH_LEGIT_PW"}, "pg_dump": pg_dump, "globals": False}
    PostgreSQLSource("pg", opts).backup(MemoryComponent(), SourceContext())
    assert started.read_text(encoding="utf-8") == LEGIT  # what the tool received in PGPASSWORD


def test_postgresql_database_name_is_never_a_connection_string(tmp_path: Path, pg_dbs: Any) -> None:
    """pg_restore reads a --dbname holding '=' as connection settings: a target named like that must be
    restored into the database of exactly that name, not wherever the settings point."""
    db = pg_dbs()
    with pg_admin(db) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        c.execute("INSERT INTO t VALUES (42)")
    mem = MemoryComponent()
    src = PostgreSQLSource("pg", {"databases": [db], "globals": False})
    src.backup(mem, SourceContext())
    hostile = pg_dbs(create=False) + " host=/nonexistent dbname=postgres"
    src.restore(mem, SourceContext(options={"database": hostile}))
    with pg_admin(hostile) as c:
        assert c.execute("SELECT id FROM t").fetchall() == [(42,)]
    with pg_admin() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{hostile}" WITH (FORCE)')


# --- Redis ---------------------------------------------------------------------------------------------


def test_redis_password_with_line_break_is_refused_and_a_legitimate_one_works(
    tmp_path: Path, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = redis_server()
    c = srv.client()
    c.config_set("requirepass", LEGIT)
    c.close()
    cli, started = tracer(tmp_path, "redis-cli")
    ref = dotenv(tmp_path, r"pw\r\nCONFIG SET dir /etc")
    opts = {"host": "127.0.0.1", "port": srv.port, "redis_cli": cli}
    with pytest.raises(SafeholdError) as exc:
        RedisSource("cache", {**opts, "password": ref}).backup(MemoryComponent(), SourceContext())
    assert_refused(exc, "component cache: password", "DB_PASSWORD", value="pw\\r\nCONFIG SET dir /etc")
    assert not started.exists()
    with pytest.raises(UnsafeValue, match="component cache: username contains a line break"):
        RedisSource("cache", {**opts, "username": "a\nb"}).backup(MemoryComponent(), SourceContext())

    monkeypatch.setenv("SH_LEGIT_PW", LEGIT)
    mem = MemoryComponent()
    RedisSource("cache", {**opts, "password": {"env": "SH_LEGIT_PW"}}).backup(mem, SourceContext())
    assert started.exists() and mem.files["dump.rdb"].startswith(b"REDIS")


# --- command -------------------------------------------------------------------------------------------


def test_command_environment_takes_any_value_but_nul(tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----")
    opts = {
        "command": ["sh", "-c", 'printf "%s" "$KEY"'],
        "filename": "out",
        "env": {"KEY": {"file": str(pem)}},
    }
    mem = MemoryComponent()
    CommandSource("cmd", CommandSource.Options.model_validate(opts)).backup(mem, SourceContext())
    assert mem.files["out"] == pem.read_bytes()  # a multi-line value is carried intact

    pem.write_text("abc\x00def")
    with pytest.raises(UnsafeValue, match=f"component cmd: env.KEY from file:{pem} contains a NUL"):
        CommandSource("cmd", CommandSource.Options.model_validate(opts)).backup(
            MemoryComponent(), SourceContext()
        )
    for bad in ({"A=B": "x"}, {"X\nY": "x"}, {"OK": "a\x00b"}):
        with pytest.raises(ValueError, match="environment variable"):
            CommandSource.Options.model_validate({**opts, "env": bad})


# --- git remotes from a snapshot -------------------------------------------------------------------------


def test_git_remotes_that_read_as_options_are_left_out() -> None:
    text = (
        "origin\thttps://example.com/app.git\t(fetch)\n"
        "-f\thttps://example.com/x.git\t(fetch)\n"
        "evil\t--upload-pack=touch /tmp/x\t(fetch)\n"
        "spa ce\thttps://example.com/y.git\t(push)\n"
        "ctl\thttps://example.com/\x1b[2J\t(push)\n"
    )
    assert _parse_remotes(text) == [("origin", "https://example.com/app.git", "fetch")]


# --- the syntax rules themselves ---------------------------------------------------------------------------


def test_syntax_rules_name_the_character_never_the_value() -> None:
    with pytest.raises(UnsafeValue) as exc:
        syntax.check("top\nsecret", syntax.OPTION_FILE, what="component x: password from env:P")
    assert exc.value.message == (
        "component x: password from env:P contains a line break (LF), which cannot go into a MySQL client "
        "option file"
    )
    with pytest.raises(UnsafeValue, match="not printable ASCII"):
        syntax.check("kéy", syntax.HTTP_HEADER, what="k")
    with pytest.raises(UnsafeValue, match=r"control character \(U\+0007\)"):
        syntax.check("a\x07", syntax.HTTP_HEADER, what="k")
    assert syntax.check("multi\nline", syntax.ENVIRONMENT, what="k") == "multi\nline"
    assert syntax.mysql_option_value('a"b\\c#d', what="k") == '"a\\"b\\\\c#d"'
    assert syntax.libpq_value("it's \\", what="k") == "'it\\'s \\\\'"


# --- SaaS API keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["retell", "calcom"])
@pytest.mark.parametrize(
    ("key", "char"),
    [
        ("key_abc\r\nX-Forwarded-Host: evil", "carriage return"),
        ("key_abc\nX: y", "line break"),
        ("key_\x00abc", "NUL"),
        ("kéy_abc", "not printable ASCII"),
    ],
)
def test_saas_api_key_is_checked_for_its_header_before_any_request(
    tmp_path: Path, kind: str, key: str, char: str
) -> None:
    from tests.fakes.saas_calcom import FakeCalcom
    from tests.fakes.saas_retell import FakeRetell
    from tests.fakes.saas_server import FakeClock, FakeSaasServer

    clock = FakeClock()
    app = FakeRetell(api_key="k", clock=clock) if kind == "retell" else FakeCalcom(api_key="k", clock=clock)
    keyfile = tmp_path / "api.key"
    keyfile.write_text(key + "\n")
    with FakeSaasServer(app) as server:
        if kind == "retell":
            from safehold.sources.saas.retell import RetellSource as Src
        else:
            from safehold.sources.saas.calcom import CalcomSource as Src  # type: ignore[assignment]
        options = Src.Options.model_validate({"api_key": {"file": str(keyfile)}, "base_url": server.url})
        with pytest.raises(SafeholdError) as exc:
            Src("crm", options, clock=clock).backup(MemoryComponent(), SourceContext())
        assert_refused(exc, "component crm: api_key", f"file:{keyfile}", char, value=key)
        assert "abc" not in exc.value.message
        mem = MemoryComponent()
        with pytest.raises(SafeholdError) as exc:  # a restore with an overriding key reference, too
            Src("crm", options, clock=clock).restore(
                mem, SourceContext(options={"api_key": {"file": str(keyfile)}}, dry_run=True)
            )
        assert isinstance(exc.value, UnsafeValue) or "holds no" in exc.value.message
        assert app.log == []  # no request was sent


# --- SFTP host names and hooks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["sftp://u@-oProxyCommand=sh/x", "sftp://u@a%20ssh-ed25519%20AAAA/x", "sftp://u@a;b/x"]
)
def test_sftp_host_that_is_not_a_host_name_is_refused(url: str) -> None:
    from safehold.backends.sftp import from_url
    from safehold.errors import ConfigError

    with pytest.raises(ConfigError, match="bad host name"):
        from_url(url, {})


def test_hook_argument_with_nul_is_a_failed_hook_not_a_crash() -> None:
    from safehold.config.tables import Hook
    from safehold.operations.backup.hooks import run_hook

    res = run_hook(Hook.model_validate({"command": ["echo", "a\x00b"], "on_failure": "abort"}))
    assert not res.ok and res.abort and "NUL" in res.message
