"""``safehold demo``: a self-contained tour that needs no server.

It creates a small application tree, a local repository, backs up, changes files, backs up again,
deletes the tree, restores it, proves it identical to a manifest taken before the deletion. Then it
writes a SQLite database for the application and takes a snapshot of components (the app's config as a
``files`` component, the database through the ``sqlite`` source's online copy), deletes the database,
restores it through the source and proves it identical (integrity check, rows per table, the same
SELECT results). Then a full data check, and last a drill of the components snapshot (restored into a
sandbox, compared with what the backup recorded, the result recorded). Each step reports through ``say``.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safehold.backends.local import LocalBackend
from safehold.config.presets.demo import DATABASE, demo_config
from safehold.engine.check.checker import Checker
from safehold.engine.format.repository import Repository
from safehold.engine.util import human_bytes
from safehold.errors import IntegrityError
from safehold.operations.backup.components import EngineComponentReader, backup_components
from safehold.operations.backup.paths import BackupOptions, backup_paths
from safehold.operations.observe.drill import DrillRequest, run_drill
from safehold.operations.restore.snapshot import RestoreOptions, restore_snapshot
from safehold.sources.base import Source, SourceContext

PHP = """<?php

namespace App\\Http\\Controllers;

use Illuminate\\Http\\Request;

class {name}Controller extends Controller
{{
    public function index(Request $request)
    {{
        return view('{view}.index', ['items' => $this->repository->paginate({n})]);
    }}
}}
"""


def make_sample_app(root: Path, rng: random.Random) -> None:
    """A small Laravel-like tree: code, vendor packages, config, uploads, a log, a symlink."""
    for i in range(60):
        p = root / "app" / "Http" / "Controllers" / f"Item{i}Controller.php"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(PHP.format(name=f"Item{i}", view=f"items{i}", n=rng.randint(10, 50)))
    for pkg in range(20):
        for j in range(25):
            p = root / "vendor" / f"package{pkg}" / "src" / f"Class{j}.php"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(PHP.format(name=f"P{pkg}C{j}", view="vendor", n=j) * rng.randint(1, 6))
    (root / "config").mkdir(exist_ok=True)
    for name in ("app", "database", "queue", "cache"):
        (root / "config" / f"{name}.php").write_text(
            f"<?php\nreturn ['name' => '{name}', 'debug' => false];\n"
        )
    (root / ".env").write_text("APP_NAME=Demo\nAPP_KEY=base64:not-a-real-key\nDB_PASSWORD=demo-only\n")
    os.chmod(root / ".env", 0o600)
    uploads = root / "storage" / "app" / "public"
    uploads.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        (uploads / f"photo{i}.jpg").write_bytes(rng.randbytes(rng.randint(50_000, 400_000)))
    log = root / "storage" / "logs" / "laravel.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        "".join(f"[2026-11-{1 + i % 28:02d}] production.INFO: request {i} ok\n" for i in range(40_000))
    )
    (root / "public").mkdir(exist_ok=True)
    (root / "public" / "storage").symlink_to("../storage/app/public")
    (root / "storage" / "framework" / "cache").mkdir(parents=True)


def change_sample_app(root: Path, rng: random.Random) -> None:
    """A day of changes: edited code, a new upload, a deleted upload, a longer log."""
    for i in range(0, 60, 10):
        p = root / "app" / "Http" / "Controllers" / f"Item{i}Controller.php"
        p.write_text(p.read_text() + "// changed\n")
    uploads = root / "storage" / "app" / "public"
    (uploads / "new-upload.pdf").write_bytes(rng.randbytes(300_000))
    (uploads / "photo3.jpg").unlink()
    with (root / "storage" / "logs" / "laravel.log").open("a") as f:
        f.write("".join(f"[2026-11-26] production.INFO: request {i} ok\n" for i in range(2_000)))


def manifest(root: Path) -> dict[str, tuple[Any, ...]]:
    """Path -> (type, mode, size, mtime_ns, sha256 or link target) for every entry below root."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def make_sample_database(path: Path, rng: random.Random) -> None:
    """The application's SQLite database: customers, orders and settings, written as an app would (WAL
    mode, several transactions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE)")
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), "
            "total_cents INTEGER, note TEXT, receipt BLOB)"
        )
        conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE INDEX orders_customer ON orders (customer_id)")
        with conn:
            conn.executemany(
                "INSERT INTO customers (name, email) VALUES (?, ?)",
                [(f"Customer {i}", f"customer{i}@example.com") for i in range(300)],
            )
        for batch in range(10):  # an application writes in many small transactions
            with conn:
                conn.executemany(
                    "INSERT INTO orders (customer_id, total_cents, note, receipt) VALUES (?, ?, ?, ?)",
                    [
                        (
                            rng.randint(1, 300),
                            rng.randint(100, 99_999),
                            f"order {batch}-{i} ✓",
                            rng.randbytes(64),
                        )
                        for i in range(200)
                    ],
                )
        with conn:
            conn.executemany(
                "INSERT INTO settings VALUES (?, ?)",
                [("currency", "EUR"), ("timezone", "Europe/Berlin"), ("mail_from", "shop@example.com")],
            )
    finally:
        conn.close()


def database_fingerprint(path: Path) -> dict[str, Any]:
    """Integrity check, rows per table and the SHA-256 of every row in key order (the same SELECTs)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608
        h = hashlib.sha256()
        for t in tables:
            for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY 1'):  # noqa: S608
                h.update(repr(row).encode())
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return {"integrity_check": integrity, "rows": rows, "sha256": h.hexdigest()}


def _tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _repo_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_demo(workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the tour in ``workdir`` (created; must be empty or absent). Returns the figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise FileExistsError(f"{workdir} is not empty")
    rng = random.Random(2026)
    app_dir = (workdir / "server" / "var" / "www" / "app").resolve()
    app_dir.mkdir(parents=True)
    make_sample_app(app_dir, rng)
    size = _tree_size(app_dir)
    say(f"1. created a sample application in {app_dir} ({human_bytes(size)})")

    repo_dir = workdir / "repository"
    password = os.urandom(12).hex()
    repo = Repository.init(LocalBackend(str(repo_dir)), password)
    say(f"2. created an encrypted repository in {repo_dir}")

    opts = BackupOptions(paths=[str(app_dir)], excludes=["storage/framework/cache/"], tags=["demo"])
    t0 = time.perf_counter()
    first = backup_paths(repo, opts).snapshot
    t1 = time.perf_counter() - t0
    after_first = _repo_size(repo_dir)
    say(
        f"3. first backup {first.short_id}: {first.summary['files']} files, {human_bytes(size)} -> "
        f"{human_bytes(after_first)} stored (compressed, encrypted) in {t1:.2f}s"
    )

    change_sample_app(app_dir, rng)
    t0 = time.perf_counter()
    second = backup_paths(repo, opts).snapshot
    t2 = time.perf_counter() - t0
    added = _repo_size(repo_dir) - after_first
    s = second.summary
    say(
        f"4. changed 6 files, added and deleted an upload, grew the log; second backup {second.short_id}: "
        f"read {s['files_read']} of {s['files']} files, added only {human_bytes(added)} in {t2:.2f}s"
    )

    before = manifest(app_dir)
    shutil.rmtree(workdir / "server")
    say(f"5. deleted {workdir / 'server'} entirely")

    restored = workdir / "restored"
    t0 = time.perf_counter()
    result = restore_snapshot(repo, RestoreOptions(snapshot="latest", target=str(restored), verify=True))
    t3 = time.perf_counter() - t0
    if result.stats.errors or result.verify_errors:
        raise IntegrityError(
            "demo restore reported problems: " + "; ".join(result.stats.errors + result.verify_errors)
        )
    again = restored / str(app_dir).lstrip("/")
    after = manifest(again)
    if after != before:
        diff = sorted(set(before.items()) ^ set(after.items()))[:5]
        raise IntegrityError(f"demo restore differs from the original: {diff}")
    say(
        f"6. restored snapshot {second.short_id} to {again} in {t3:.2f}s: all {len(before)} entries identical "
        "(content, modes, mtimes, symlinks)"
    )

    db_path = again / "database" / "app.sqlite3"
    make_sample_database(db_path, rng)
    before_db = database_fingerprint(db_path)
    rows_text = ", ".join(f"{t} {n}" for t, n in before_db["rows"].items())
    config = demo_config(again / "config", db_path, workdir)
    components: list[tuple[str, Source, bool]] = [
        (n, config.build_source(n), False) for n in config.components
    ]
    named = ", ".join(f"'{n}' ({c.kind})" for n, c in config.components.items())
    t0 = time.perf_counter()
    third, results = backup_components(repo, components, snap_fields={"tags": ["demo", "components"]})
    t4 = time.perf_counter() - t0
    failed = [f"{r.name}: {r.error}" for r in results if r.status != "ok"]
    if failed:
        raise IntegrityError("demo component backup failed: " + "; ".join(failed))
    say(
        f"7. wrote the app's SQLite database {db_path.name} ({rows_text} rows); snapshot {third.short_id} of "
        f"components {named} in {t4:.2f}s"
    )

    for leftover in db_path.parent.glob(db_path.name + "*"):
        leftover.unlink()
    t0 = time.perf_counter()
    reader = EngineComponentReader(repo, repo.find_snapshot(third.id), DATABASE)
    database = config.build_source(DATABASE)
    database.restore(reader, SourceContext())
    t5 = time.perf_counter() - t0
    after_db = database_fingerprint(db_path)
    if after_db != before_db:
        raise IntegrityError(f"demo database restore differs: {before_db} != {after_db}")
    say(
        f"8. deleted {db_path.name}, restored it through the {database.kind} source in {t5:.2f}s: integrity_check "
        f"{after_db['integrity_check']}, same rows per table, same SELECT results (sha256 {after_db['sha256'][:12]})"
    )

    check = Checker(repo).run(read_data=True)
    if not check.ok:
        raise IntegrityError("demo check failed: " + "; ".join(check.errors))
    say(
        f"9. check --read-data: {check.packs_read} packs, {check.blobs_read} blobs decrypted and verified, no errors"
    )
    drill = run_drill(repo, config, DrillRequest(snapshot=third.id))
    if not drill.ok:
        raise IntegrityError(
            "demo drill failed: " + "; ".join(f"{st.name}: {st.message}" for st in drill.steps if not st.ok)
        )
    say(
        f"10. drill of snapshot {third.short_id} in a sandbox in {drill.seconds:.2f}s: "
        + "; ".join(f"{st.name}: {st.message}" for st in drill.steps)
        + " (the result is recorded in the repository for 'safehold status')"
    )
    return {
        "drill": drill.as_dict(),
        "workdir": str(workdir),
        "source_bytes": size,
        "repository_bytes_after_first": after_first,
        "repository_bytes_added_by_second": added,
        "first_backup_seconds": round(t1, 3),
        "second_backup_seconds": round(t2, 3),
        "restore_seconds": round(t3, 3),
        "entries_verified": len(before),
        "database": {
            "path": str(db_path),
            "rows": after_db["rows"],
            "integrity_check": after_db["integrity_check"],
            "sha256": after_db["sha256"],
            "backup_seconds": round(t4, 3),
            "restore_seconds": round(t5, 3),
        },
        "snapshots": [first.id, second.id, third.id],
    }
