"""Deduplication: unchanged data adds (almost) nothing; an insertion near the start adds little."""

from __future__ import annotations

import random
from pathlib import Path

from safehold.engine.format.repository import MAX_CHUNK


def _repo_bytes(repo_path: Path) -> int:
    return sum(p.stat().st_size for p in repo_path.rglob("*") if p.is_file() and "locks" not in p.parts)


def _tree(root: Path) -> None:
    rng = random.Random(7)
    for d in range(20):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(40):
            (sub / f"f{f}.txt").write_bytes(rng.randbytes(rng.randint(100, 20_000)))
    (root / "big.bin").write_bytes(rng.randbytes(24 << 20))


def test_unchanged_second_backup_adds_under_one_percent(tmp_path: Path, run, repo_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    run("init")
    assert run("backup", str(src)).code == 0
    first = _repo_bytes(repo_path)
    r = run("backup", str(src), "--json")
    assert r.code == 0
    second = _repo_bytes(repo_path)
    assert second - first < first * 0.01, (first, second)
    # and the same with the files cache disabled (content-defined dedup alone)
    assert run("backup", str(src), "--no-cache").code == 0
    assert _repo_bytes(repo_path) - second < first * 0.01
    assert r.json()["summary"]["files_cached"] == 801


def test_insertion_near_start_of_large_file_stores_at_most_two_chunks(
    tmp_path: Path, run, repo_path: Path
) -> None:
    """Content-defined chunking resynchronises after an insertion: the second backup stores the chunk
    the insertion falls into and, when that chunk was cut at ``MAX_CHUNK`` rather than by its content,
    the next one (each repository draws its own chunker seed, so chunks may be up to ``MAX_CHUNK``
    long) -- never the rest of the 64 MiB file."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(11)
    data = rng.randbytes(64 << 20)
    (src / "dump.sql").write_bytes(data)
    run("init")
    assert run("backup", str(src)).code == 0
    first = _repo_bytes(repo_path)
    (src / "dump.sql").write_bytes(data[:4096] + b"INSERT INTO t VALUES (42);\n" * 100 + data[4096:])
    assert run("backup", str(src)).code == 0
    added = _repo_bytes(repo_path) - first
    assert added < 2 * MAX_CHUNK + (1 << 20), (added, first)  # two chunks and metadata, not 64 MiB


def test_cache_entries_whose_blobs_are_gone_are_read_again(tmp_path: Path, run, repo_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    run("init")
    assert run("backup", str(src)).code == 0
    for folder in ("data", "index", "snapshots"):  # the repository loses everything but its keys
        for p in (repo_path / folder).rglob("*"):
            if p.is_file():
                p.unlink()
    r = run("backup", str(src), "--json")
    assert r.code == 0, r.out
    assert r.json()["summary"]["files_cached"] == 0
    assert run("check", "--read-data").code == 0
    target = tmp_path / "restored"
    assert run("restore", "latest", "--target", str(target)).code == 0
    assert (target / src.relative_to("/") / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
