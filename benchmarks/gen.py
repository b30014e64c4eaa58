"""Deterministic generator of a web-server-like data set and of its daily change.

Layout of a generated tree (counts at ``scale=1.0``, about 1 GiB in all)::

    app/, resources/, routes/, config/, tests/   ~20,000 PHP/JS source files, 2-20 KB each
    vendor/<vendor>/<package>/...                ~13,500 small PHP files (+ LICENSE, composer.json)
    node_modules/<package>/...                   ~16,500 small JS files (+ LICENSE, package.json)
    storage/app/public/uploads/YYYY/MM/...       ~2,000 uploads, 50 KB-2 MB, ~85% incompressible
    storage/app/backups/app_db.sql               one mysqldump-like SQL dump, ~300 MiB
    public/storage -> ../storage/app/public      Laravel's storage symlink; .env at the root

``generate(root, scale, seed)`` writes the same bytes and names for the same ``scale`` and ``seed``
(file mtimes are the time of writing). ``apply_daily_change(root, day)`` applies one realistic day:
1% of the small files (code, vendor, node_modules) edited, rows spliced into the middle and the end of
the dump (the dump is rewritten), 20 uploads added and 10 deleted (counts scaled). It is
deterministic for a given tree and ``day``.

Scale multiplies every file count and the dump size; single-file sizes stay realistic, so
``scale=0.01`` gives ~10 MiB.
"""

from __future__ import annotations

import argparse
import mmap
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from benchmarks._sql import new_rows, write_dump
from benchmarks._text import BlockPool

_PKG_PARENT = Path(__file__).resolve().parent.parent
CODE_FILES = 20_000
VENDOR_FILES = 13_500
NODE_FILES = 16_500
UPLOADS = 2_000
DUMP_BYTES = 300 << 20
DAILY_SMALL_FRACTION = 0.01
DAILY_UPLOADS_ADDED = 20
DAILY_UPLOADS_DELETED = 10
DAILY_DUMP_MIDDLE_ROWS = 2_000
DAILY_DUMP_END_ROWS = 5_000

CODE_DIRS = ("app", "resources", "routes", "config", "tests", "database/migrations")
SMALL_DIRS = (*CODE_DIRS, "vendor", "node_modules")
UPLOADS_DIR = Path("storage/app/public/uploads")
DUMP_PATH = Path("storage/app/backups/app_db.sql")

MIT = (
    "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy of this "
    'software and associated documentation files (the "Software"), to deal in the Software without '
    "restriction, including without limitation the rights to use, copy, modify, merge, publish, "
    'distribute, sublicense, and/or sell copies of the Software.\n\nTHE SOFTWARE IS PROVIDED "AS IS", '
    "WITHOUT WARRANTY OF ANY KIND.\n"
)
CODE_SUBDIRS = (
    "app/Http/Controllers", "app/Http/Middleware", "app/Models", "app/Services", "app/Jobs",
    "app/Listeners", "app/Policies", "app/Console/Commands", "resources/js/components",
    "resources/js/stores", "resources/views", "routes", "config", "tests/Feature", "tests/Unit",
    "database/migrations",
)  # fmt: skip
UPLOAD_KINDS = ((b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ".jpg"), (b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", ".pdf"),
                (b"\x89PNG\r\n\x1a\n", ".png"))  # fmt: skip


@dataclass(frozen=True)
class Stats:
    """What ``generate`` wrote: file counts per category and total bytes."""

    code_files: int
    vendor_files: int
    node_files: int
    uploads: int
    dump_bytes: int
    total_bytes: int


def scaled(n: int, scale: float) -> int:
    """``n`` scaled, never below 1."""
    return max(1, round(n * scale))


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def _log_sizes(rng: np.random.Generator, n: int, median: float, sigma: float, lo: int, hi: int) -> list[int]:
    return np.clip(rng.lognormal(np.log(median), sigma, n), lo, hi).astype(np.int64).tolist()  # type: ignore[no-any-return]


def _code(root: Path, rng: np.random.Generator, pool: BlockPool, n: int) -> int:
    v, total, used = pool.vocab, 0, set()
    sizes = np.exp(rng.uniform(np.log(2_000), np.log(20_000), n)).astype(np.int64).tolist()
    ndirs = max(1, n // 25)
    dirs = [f"{CODE_SUBDIRS[i % len(CODE_SUBDIRS)]}/{v.noun()}" for i in range(ndirs)]
    for i, size in enumerate(sizes):
        d = dirs[i % ndirs]
        js = d.startswith("resources/js")
        name = f"{v.noun()}.js" if js else f"{v.noun()}{'.blade' if 'views' in d else ''}.php"
        rel = f"{d}/{name}"
        if rel in used:
            rel = f"{d}/{i}{name}"
        used.add(rel)
        text = pool.js_file(size) if js else pool.php_file(size)
        total += _write(root / rel, text.encode())
    return total


def _packages(root: Path, rng: np.random.Generator, pool: BlockPool, n: int, top: str) -> int:
    """``n`` small files in packages under ``root/top`` (vendor: PHP, node_modules: JS)."""
    v, total, i, pkg = pool.vocab, 0, 0, 0
    sizes = _log_sizes(rng, n, 2_500, 0.9, 200, 30_000)
    js = top == "node_modules"
    while i < n:
        pkg += 1
        name = f"{v.word()}-{v.word()}{pkg}"
        base = root / top / (name if js else f"{v.word()}/{name}")
        manifest = f'{{\n  "name": "{name}",\n  "version": "{pkg % 9}.{pkg % 17}.{pkg % 5}",\n  "license": "MIT"\n}}\n'
        total += _write(base / "LICENSE", MIT.encode())
        total += _write(base / ("package.json" if js else "composer.json"), manifest.encode())
        i += 2
        m = min(n - i, 10 + v.num(50))
        for j in range(m):
            sub = ("lib", "dist", "src", "src/Support")[j % 4]
            fname = f"{v.var()}{j}.js" if js else f"{v.noun()}{j}.php"
            size = sizes[i + j]
            text = pool.body("js", size) if js else "<?php\n\n" + pool.body("php", size)
            total += _write(base / sub / fname, text.encode())
        i += m
    return total


def _upload_bytes(rng: np.random.Generator, size: int, compressible: bool) -> tuple[bytes, str]:
    if compressible:
        head = "id,name,email,amount,created_at,comment\n"
        ids = rng.integers(1, 10**6, size // 60 + 1).tolist()
        words = ("alpha", "beta", "gamma", "delta", "order", "refund", "invoice", "call", "slot")
        pick = rng.integers(0, len(words), len(ids)).tolist()
        body = "".join(
            f"{k},{words[p]} {k % 97},{words[p]}{k}@example.com,{k % 9999}.{k % 100:02d},2024-0{1 + k % 9}-1{k % 10} 10:{k % 60:02d}:00,{words[(p + 1) % 9]} {words[(p + 2) % 9]}\n"
            for k, p in zip(ids, pick, strict=True)
        )
        return (head + body).encode()[:size], ".csv"
    magic, ext = UPLOAD_KINDS[int(rng.integers(0, len(UPLOAD_KINDS)))]
    return magic + rng.bytes(size - len(magic)), ext


def _upload(root: Path, rng: np.random.Generator, folder: str, size: int) -> int:
    data, ext = _upload_bytes(rng, size, bool(rng.random() < 0.15))
    return _write(root / UPLOADS_DIR / folder / f"{rng.bytes(12).hex()}{ext}", data)


def _bulk(root: Path, scale: float, seed: int) -> tuple[int, int]:
    """Uploads and the dump (the large files); returns (total bytes, dump bytes)."""
    up_rng, dump_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)[2:4])
    total = 0
    for size in _log_sizes(up_rng, scaled(UPLOADS, scale), 150_000, 0.9, 50_000, 2_000_000):
        total += _upload(
            root, up_rng, f"{2020 + int(up_rng.integers(0, 6))}/{int(up_rng.integers(1, 13)):02d}", size
        )
    dump = root / DUMP_PATH
    dump.parent.mkdir(parents=True, exist_ok=True)
    with open(dump, "wb") as f:
        write_dump(f, dump_rng, int(DUMP_BYTES * scale))
    dump_bytes = dump.stat().st_size
    return total + dump_bytes, dump_bytes


def generate(root: Path, scale: float = 1.0, seed: int = 1) -> Stats:
    """Write the data set under ``root`` (created; must not already hold a data set).

    Same ``scale`` and ``seed`` give the same file names and bytes. Returns what was written. The
    large files (uploads, dump) are written by a second process while this one writes the small
    files; each part has its own random stream, so the split does not change the bytes.
    """
    root.mkdir(parents=True, exist_ok=True)
    code_rng, pkg_rng, _up, _dump, pool_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    n_code, n_vendor, n_node = (scaled(n, scale) for n in (CODE_FILES, VENDOR_FILES, NODE_FILES))
    # A plain child interpreter (not multiprocessing): it does not re-import the caller's __main__.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_PKG_PARENT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.gen",
        str(root),
        "--scale",
        repr(scale),
        "--seed",
        str(seed),
        "--part",
        "bulk",
    ]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE) as child:
        pool = BlockPool(pool_rng, size=min(12_000, max(1_000, (n_code + n_vendor + n_node) // 4)))
        total = _code(root, code_rng, pool, n_code)
        total += _packages(root, pkg_rng, pool, n_vendor, "vendor")
        total += _packages(root, pkg_rng, pool, n_node, "node_modules")
        secret = f"APP_KEY=base64:{pool_rng.bytes(32).hex()}\nDB_PASSWORD=secret\n"
        total += _write(root / ".env", secret.encode())
        (root / "public").mkdir(exist_ok=True)
        os.symlink("../storage/app/public", root / "public" / "storage")
        out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"generating the uploads and the dump failed (exit {child.returncode})")
    bulk_total, dump_bytes = (int(x) for x in out.split())
    return Stats(n_code, n_vendor, n_node, scaled(UPLOADS, scale), dump_bytes, total + bulk_total)


def small_files(root: Path) -> list[Path]:
    """The code, vendor and node_modules files of a tree, sorted."""
    out: list[Path] = []
    for top in SMALL_DIRS:
        for dirpath, _dirs, files in os.walk(root / top):
            out.extend(Path(dirpath) / f for f in files)
    return sorted(out)


def uploads(root: Path) -> list[Path]:
    """The upload files of a tree, sorted."""
    return sorted(Path(d) / f for d, _dirs, files in os.walk(root / UPLOADS_DIR) for f in files)


@dataclass(frozen=True)
class Change:
    """What ``apply_daily_change`` did."""

    modified: list[Path]
    added: list[Path]
    deleted: list[Path]
    dump_rows_middle: int
    dump_rows_end: int
    dump_bytes_added: int


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, end: int) -> None:
    """Copy bytes [start, end) of ``src`` to the current position of ``dst`` (in the kernel)."""
    dst.flush()
    pos = start
    while pos < end:
        n = os.copy_file_range(src.fileno(), dst.fileno(), end - pos, pos)
        if n <= 0:
            raise OSError(f"copy_file_range stopped at {pos} of {end}")
        pos += n


def _splice_dump(path: Path, rng: np.random.Generator, day: int, middle: int, end: int) -> int:
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        mid = mm.find(b"),(", len(mm) // 2) + 1
        start = mm.rfind(b"INSERT INTO `", 0, mid) + len(b"INSERT INTO `")
        mid_table = mm[start : mm.find(b"`", start)].decode()
        last = mm.rfind(b";\n/*!40000 ALTER TABLE `")
        start = last + len(b";\n/*!40000 ALTER TABLE `")
        end_table = mm[start : mm.find(b"`", start)].decode()
        if mid <= 0 or last < mid:
            raise ValueError(f"{path} does not look like a generated dump")
        rows_mid = new_rows(rng, mid_table, 100_000_000 * day, middle)
        rows_end = new_rows(rng, end_table, 100_000_000 * day + middle, end)
        size = len(mm)
    with open(path, "rb") as f, open(tmp, "wb") as out:
        for a, b, rows in ((0, mid, rows_mid), (mid, last, rows_end), (last, size, b"")):
            _copy_range(f, out, a, b)
            out.write(rows)
    os.replace(tmp, path)
    return len(rows_mid) + len(rows_end)


def _edit(path: Path, pool: BlockPool) -> None:
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    at = len(lines) // 2
    lang = "js" if path.suffix == ".js" else "php"
    lines.insert(at, pool.body(lang, 300 + pool.vocab.num(1500)))
    path.write_text("".join(lines))


def apply_daily_change(root: Path, day: int = 1, scale: float | None = None) -> Change:
    """Apply day ``day``'s change to a generated tree in place.

    ``scale`` (default: inferred from the number of small files) sets how many uploads are added and
    deleted and how many dump rows are inserted. Deterministic for the same tree and ``day``.
    """
    rng = np.random.default_rng([day, 0xDA11])
    small = small_files(root)
    if scale is None:
        scale = len(small) / (CODE_FILES + VENDOR_FILES + NODE_FILES)
    pool = BlockPool(rng, size=200)
    k = max(1, round(len(small) * DAILY_SMALL_FRACTION))
    modified = [small[i] for i in sorted(rng.choice(len(small), k, replace=False).tolist())]
    for p in modified:
        _edit(p, pool)
    existing = uploads(root)
    n_del = min(len(existing), scaled(DAILY_UPLOADS_DELETED, scale))
    deleted = [existing[i] for i in sorted(rng.choice(len(existing), n_del, replace=False).tolist())]
    for p in deleted:
        p.unlink()
    before = set(existing)
    for size in _log_sizes(rng, scaled(DAILY_UPLOADS_ADDED, scale), 150_000, 0.9, 50_000, 2_000_000):
        _upload(root, rng, f"2026/{(day - 1) % 12 + 1:02d}", size)
    added = sorted(set(uploads(root)) - before)
    middle, end = scaled(DAILY_DUMP_MIDDLE_ROWS, scale), scaled(DAILY_DUMP_END_ROWS, scale)
    grown = _splice_dump(root / DUMP_PATH, rng, day, middle, end)
    return Change(modified, added, deleted, middle, end, grown)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.gen ROOT [--scale S] [--seed N]`` generates; ``--day D`` applies a change."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gen", description=main.__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--day", type=int, help="apply this day's change to an existing tree instead")
    ap.add_argument("--part", choices=["bulk"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part == "bulk":
        print(*_bulk(args.root, args.scale, args.seed))
    elif args.day is not None:
        c = apply_daily_change(args.root, args.day)
        print(
            f"modified {len(c.modified)}, uploads +{len(c.added)} -{len(c.deleted)}, dump +{c.dump_bytes_added} bytes"
        )
    else:
        st = generate(args.root, args.scale, args.seed)
        print(f"{st.total_bytes / 2**20:.1f} MiB: {st}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
