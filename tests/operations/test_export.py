"""``safehold export``: a snapshot made by real sources becomes the original plan's layout, verifiable with
``sha256sum -c``; its database dump loads into a fresh database with identical table checksums; its app
archive extracts to the source tree; nothing is ever overwritten and a damaged export is caught."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from safehold.backends.base import FileType
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.errors import IntegrityError, UsageError
from safehold.operations.backup.components import backup_components
from safehold.operations.backup.paths import BackupOptions, backup_paths
from safehold.operations.export.sink import checksum_line
from safehold.operations.export.snapshot import ExportOptions, ExportTargetExists, export_snapshot
from safehold.sources.base import Source
from safehold.sources.command import CommandSource
from safehold.sources.files import FilesSource
from safehold.sources.mysql import MySQLSource
from safehold.sources.postgresql import PostgreSQLSource
from tests.helpers.fixtures import Result
from tests.helpers.treecompare import compare_trees

BLOB = bytes(range(256)) * 4 + b"\x00'\\\n\r),(\x1a"


def _conn(db: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", database=db, charset="utf8mb4", autocommit=True
    )


@pytest.fixture
def dbs() -> Iterator[Callable[[], str]]:
    """Empty databases with random names, all dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"sh_export_{secrets.token_hex(4)}"
        made.append(name)
        with _conn() as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return name

    yield make
    with _conn() as c, c.cursor() as cur:
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def fill(db: str) -> None:
    with _conn(db) as c, c.cursor() as cur:
        cur.execute(
            "CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), note TEXT, "
            "photo BLOB) DEFAULT CHARSET=utf8mb4"
        )
        cur.execute("CREATE TABLE agents (id VARCHAR(40) PRIMARY KEY, phone VARCHAR(20), config JSON)")
        cur.execute("CREATE TABLE empty_one (id INT PRIMARY KEY)")
        cur.executemany(
            "INSERT INTO people (name, note, photo) VALUES (%s, %s, %s)",
            [
                (f"Person {i} 😀 Ünïcode", f"line1\nline2\t'q' \\ ),( {i}", BLOB + bytes([i]))
                for i in range(120)
            ],
        )
        cur.execute("INSERT INTO people (name, note, photo) VALUES (NULL, NULL, NULL)")
        cur.execute("""INSERT INTO agents VALUES ('agent_1', '+4930123', '{"voice": "nova"}')""")


def checksums(db: str) -> dict[str, Any]:
    with _conn(db) as c, c.cursor() as cur:
        cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        tables = sorted(r[0] for r in cur.fetchall())
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
        return {r[0].split(".", 1)[1]: r[1] for r in cur.fetchall()}


def make_app(root: Path) -> None:
    (root / "public").mkdir(parents=True)
    (root / "app" / "Http").mkdir(parents=True)
    (root / "public" / "index.php").write_text("<?php require '../bootstrap.php';\n")
    (root / "app" / "Http" / "Kernel.php").write_text("<?php class Kernel {}\n")
    (root / "artisan").write_text("#!/usr/bin/env php\n")
    (root / "artisan").chmod(0o755)
    (root / "private.txt").write_text("only me\n")
    (root / "private.txt").chmod(0o600)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # several blobs
    (root / "current").symlink_to("public/index.php")
    os.link(root / "artisan", root / "artisan-link")
    (root / "empty-dir").mkdir(mode=0o750)
    os.utime(root / "public" / "index.php", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def make_config(root: Path) -> None:
    (root / "config").mkdir(parents=True)
    (root / ".env").write_text("APP_KEY=base64:secret\nDB_PASSWORD=hunter2\n")
    (root / ".env").chmod(0o640)
    (root / ".env.example").write_text("APP_KEY=\n")
    (root / "composer.json").write_text('{"name": "acme/app"}\n')
    (root / "config" / "app.php").write_text("<?php return [];\n")


def sha256sum_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sha256sum", "-c", "--strict", "checksums.txt"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def extract(archive: Path, into: Path) -> Path:
    """Extract a tar export with GNU tar (the tool a person would use); returns its top folder."""
    into.mkdir()
    flag = ["--zstd"] if archive.name.endswith(".zst") else ["-z"]
    subprocess.run(["tar", *flag, "-xf", str(archive), "-C", str(into)], check=True)
    (top,) = list(into.iterdir())
    return top


def same_sums(folder: Path) -> list[str]:
    lines = (folder / "checksums.txt").read_text().splitlines()
    return [line for line in lines if not line.endswith(("  metadata.json", "  RESTORE.md"))]


def regular_files(folder: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.add(str(p.relative_to(folder)))
    return out


@pytest.fixture
def component_snapshot(
    tmp_path: Path, repo: Repository, dbs: Callable[[], str]
) -> tuple[Snapshot, dict[str, Any]]:
    app, config = tmp_path / "srv" / "app", tmp_path / "srv" / "appconf"
    make_app(app)
    make_config(config)
    db = dbs()
    fill(db)
    components: list[tuple[str, Source, bool]] = [
        ("app", FilesSource("app", {"paths": [str(app)]}), False),
        ("config", FilesSource("config", {"paths": [str(config)]}), False),
        ("database", MySQLSource("database", {"databases": [db], "text_exports": ["agents"]}), False),
        (
            "notes",
            CommandSource(
                "notes", CommandSource.Options(command=["printf", "hello\\n"], filename="notes.txt")
            ),
            False,
        ),
    ]
    snap, results = backup_components(repo, components)
    assert [r.status for r in results] == ["ok"] * 4, [(r.name, r.error) for r in results]
    return snap, {"app": app, "config": config, "db": db}


def check_export(root: Path, src: dict[str, Any], dbs: Callable[[], str], tmp: Path) -> None:
    """Everything the issue asks of an export, checked on the unpacked folder ``root``."""
    ok = sha256sum_check(root)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    listed = {line.split("  ", 1)[1] for line in (root / "checksums.txt").read_text().splitlines()}
    assert listed == regular_files(root) - {"checksums.txt"}
    for name in (
        "app/application.tar.gz",
        "database/full_dump.sql.gz",
        "database/schema_only.sql.gz",
        "database/table_statistics.txt",
        "external-services/database-exports/agents.tsv",
        "config/env.production",
        "config/env.example",
        "config/composer.json",
        "config/config/app.php",
        "notes/notes.txt",
        "metadata.json",
        "RESTORE.md",
    ):
        assert (root / name).is_file(), name

    # MariaDB's sandbox first line (MySQL's client rejects it) is left out of the export only
    exported = gzip.decompress((root / "database" / "full_dump.sql.gz").read_bytes())
    assert b"sandbox mode" not in exported.split(b"\n", 1)[0] and exported.startswith(b"-- ")
    assert (
        b"sandbox mode" not in gzip.decompress((root / "database" / "schema_only.sql.gz").read_bytes())[:80]
    )
    # the database dump loads into a fresh database with the same table checksums (sandboxed client)
    fresh = dbs()
    with open(root / "database" / "full_dump.sql.gz", "rb") as dump:
        gunzip = subprocess.Popen(["gunzip"], stdin=dump, stdout=subprocess.PIPE)
        load = subprocess.run(
            ["mariadb", "--sandbox", "-h", "127.0.0.1", "-P", "3306", "-u", "root", fresh],
            stdin=gunzip.stdout,
            capture_output=True,
            check=False,
        )
        assert gunzip.stdout is not None
        gunzip.stdout.close()
        assert gunzip.wait() == 0 and load.returncode == 0, load.stderr
    original = checksums(src["db"])
    assert len(original) == 3 and checksums(fresh) == original
    assert b"CREATE TABLE `people`" in gzip.decompress(
        (root / "database" / "schema_only.sql.gz").read_bytes()
    )
    assert "agent_1" in (root / "external-services/database-exports/agents.tsv").read_text()

    # the app archive extracts (GNU tar) to a tree identical to the source
    out = tmp / "app-extracted"
    out.mkdir(parents=True)
    subprocess.run(["tar", "-xzpf", str(root / "app/application.tar.gz"), "-C", str(out)], check=True)
    assert compare_trees(src["app"], out / str(src["app"]).lstrip("/"), check_owner=False) == []

    env = root / "config" / "env.production"
    assert env.read_bytes() == (src["config"] / ".env").read_bytes()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert (root / "notes/notes.txt").read_bytes() == b"hello\n"
    guide = (root / "RESTORE.md").read_text()
    assert "NOT encrypted" in guide and "config/env.production" in guide and "sha256sum -c" in guide
    assert "gunzip < database/full_dump.sql.gz | mysql" in guide and "mariadb --sandbox" in guide
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["snapshot"]["components"]["database"]["kind"] == "mysql"


def test_export_dir_tar_gz_tar_zst(
    tmp_path: Path,
    repo: Repository,
    component_snapshot: tuple[Snapshot, dict[str, Any]],
    dbs: Callable[[], str],
) -> None:
    snap, src = component_snapshot
    # folder output
    out = tmp_path / "export"
    res = export_snapshot(repo, ExportOptions(snap.id[:8], str(out)))
    assert res.format == "dir" and res.files == len(regular_files(out)) - 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert res.secrets == ["config/env.production: application secrets (.env)"]
    check_export(out, src, dbs, tmp_path / "d")
    assert not [p for p in tmp_path.iterdir() if ".safehold-partial" in p.name]

    # tar outputs hold the same tree below safehold-export-<short id>/
    for suffix in (".tar.gz", ".tar.zst"):
        archive = tmp_path / f"export{suffix}"
        res = export_snapshot(repo, ExportOptions("latest", str(archive)))
        assert res.top == f"safehold-export-{snap.short_id}" and res.size == archive.stat().st_size
        top = extract(archive, tmp_path / f"x{suffix}")
        assert top.name == res.top
        check_export(top, src, dbs, tmp_path / f"t{suffix}")
        # the same bytes as the folder export, except the two files that carry the export's own time
        assert regular_files(top) == regular_files(out)
        assert same_sums(top) == same_sums(out)

    # a damaged export fails sha256sum -c
    dump = out / "database" / "full_dump.sql.gz"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    dump.write_bytes(bytes(data))
    bad = sha256sum_check(out)
    assert bad.returncode != 0 and "database/full_dump.sql.gz: FAILED" in bad.stdout


def test_files_only_snapshot(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "site"
    make_app(src)
    (src / ".env").write_text("SECRET=1\n")
    snap = backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False)).snapshot
    archive = tmp_path / "files.tar.gz"
    res = export_snapshot(repo, ExportOptions(snap.id, str(archive)))
    top = extract(archive, tmp_path / "x")
    assert sha256sum_check(top).returncode == 0
    assert regular_files(top) == {"files/files.tar.gz", "metadata.json", "RESTORE.md", "checksums.txt"}
    out = tmp_path / "files"
    out.mkdir()
    subprocess.run(["tar", "-xzpf", str(top / "files/files.tar.gz"), "-C", str(out)], check=True)
    assert compare_trees(src, out / str(src).lstrip("/"), check_owner=False) == []
    assert json.loads((top / "metadata.json").read_text())["snapshot"]["id"] == snap.id
    assert any(".env" in s for s in res.secrets)
    assert "files/files.tar.gz" in (top / "RESTORE.md").read_text()
    with tarfile.open(archive) as t:  # every entry below the top folder
        assert all(n == res.top or n.startswith(res.top + "/") for n in t.getnames())


def test_refuses_to_overwrite_and_cleans_up(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    snap = backup_paths(repo, BackupOptions(paths=[str(src)], use_cache=False)).snapshot
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine\n")
    existing = tmp_path / "old.tar.gz"
    existing.write_bytes(b"not mine to replace")
    for target in (full, existing):
        with pytest.raises(ExportTargetExists) as exc:
            export_snapshot(repo, ExportOptions(snap.id, str(target)))
        assert exc.value.exit_code == 2 and "never overwrites" in exc.value.hint
    assert (full / "keep.txt").read_text() == "mine\n" and existing.read_bytes() == b"not mine to replace"
    with pytest.raises(UsageError, match="unsupported archive"):
        export_snapshot(repo, ExportOptions(snap.id, str(tmp_path / "x.zip")))
    with pytest.raises(UsageError, match="does not exist"):
        export_snapshot(repo, ExportOptions(snap.id, str(tmp_path / "no" / "such" / "dir")))
    empty = tmp_path / "empty"
    empty.mkdir()
    export_snapshot(repo, ExportOptions(snap.id, str(empty)))  # an empty folder is fine
    assert sha256sum_check(empty).returncode == 0

    # damaged repository data: the export fails and leaves nothing behind
    for fi in repo.backend.list(FileType.DATA):
        path = Path(repo.backend.properties.location) / "data" / fi.name[:2] / fi.name
        raw = bytearray(path.read_bytes())
        raw[10] ^= 0xFF
        path.chmod(0o600)
        path.write_bytes(bytes(raw))
    fresh = Repository.open(repo.backend, "correct horse battery staple")
    with pytest.raises(IntegrityError):
        export_snapshot(fresh, ExportOptions(snap.id, str(tmp_path / "broken.tar.zst")))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".broken", "broken"))) == []


def test_checksum_line_escapes_odd_names(tmp_path: Path) -> None:
    odd = "new\nline and back\\slash"
    (tmp_path / odd).write_bytes(b"x")
    (tmp_path / "plain name").write_bytes(b"y")
    import hashlib

    lines = checksum_line(hashlib.sha256(b"x").hexdigest(), odd)
    lines += checksum_line(hashlib.sha256(b"y").hexdigest(), "plain name")
    (tmp_path / "checksums.txt").write_bytes(lines)
    assert sha256sum_check(tmp_path).returncode == 0
    (tmp_path / odd).write_bytes(b"z")
    assert sha256sum_check(tmp_path).returncode != 0


def test_cli_export(tmp_path: Path, run: Callable[..., Result]) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "index.html").write_text("<h1>hi</h1>\n")
    assert run("init").code == 0
    assert run("backup", str(src)).code == 0
    out = tmp_path / "out.tar.zst"
    r = run("export", "latest", str(out), "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["encrypted"] is False and doc["format"] == "tar.zst" and doc["files"] == 3
    assert "NOT encrypted" in r.err
    check = subprocess.run(
        ["bash", "-c", doc["verify_command"]], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and "files/files.tar.gz: OK" in check.stdout, check.stdout + check.stderr
    text = run("export", "latest", str(tmp_path / "dir-out"))
    assert text.code == 0 and "sha256sum -c checksums.txt" in text.out and "NOT encrypted" in text.err
    assert "metadata.json: OK" in sha256sum_check(tmp_path / "dir-out").stdout


@pytest.fixture
def pg_db() -> Iterator[str]:
    name = f"sh_export_{secrets.token_hex(4)}"
    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        c.execute("INSERT INTO t VALUES (1, 'ünï 😀'), (2, NULL)")
    yield name
    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_several_databases_and_postgresql(
    tmp_path: Path, repo: Repository, dbs: Callable[[], str], pg_db: str
) -> None:
    one, two = dbs(), dbs()
    fill(one)
    fill(two)
    components: list[tuple[str, Source, bool]] = [
        (
            "database",
            MySQLSource("database", {"databases": [one, two], "text_exports": [f"{two}.agents"]}),
            False,
        ),
        ("pg", PostgreSQLSource("pg", {"databases": [pg_db]}), False),
    ]
    snap, results = backup_components(repo, components)
    assert [r.status for r in results] == ["ok", "ok"], [(r.name, r.error) for r in results]
    out = tmp_path / "export"
    export_snapshot(repo, ExportOptions(snap.id, str(out)))
    assert sha256sum_check(out).returncode == 0
    files = regular_files(out)
    for db in (one, two):
        assert f"database/database/{db}/full_dump.sql.gz" in files
        assert f"database/database/{db}/table_statistics.txt" in files
    assert f"external-services/database-exports/database/{two}/agents.tsv" in files
    assert f"database/pg/{pg_db}.pgcustom" in files and "database/pg/globals.sql.gz" in files
    listing = subprocess.run(
        ["pg_restore", "--list", str(out / "database/pg" / f"{pg_db}.pgcustom")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0 and "TABLE DATA public t" in listing.stdout, listing.stderr
    guide = (out / "RESTORE.md").read_text()
    assert f"pg_restore --no-owner -d {pg_db} database/pg/{pg_db}.pgcustom" in guide
    assert f"gunzip < database/database/{one}/full_dump.sql.gz | mysql {one}" in guide
