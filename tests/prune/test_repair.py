"""``repair index`` and ``repair snapshots``: a deleted or damaged index file, a deleted or damaged pack,
a damaged snapshot file. After the repair, ``check --read-data`` passes and every intact file restores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.prune.test_prune import files, listing


def _setup(tmp_path: Path, run: Any) -> Path:
    data = tmp_path / "data"
    files(data / "small", range(40), size=5_000)
    files(data / "big", range(3), size=3_000_000)  # several data packs
    assert run("init").code == 0
    assert run("backup", str(data)).code == 0
    return data


def _restored(run: Any, tmp_path: Path, snap: str, name: str) -> dict[str, bytes]:
    out = tmp_path / name
    r = run("restore", snap, "--target", str(out))
    assert r.code in (0, 1), r.err
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _originals(data: Path) -> dict[str, bytes]:
    return {str(p).lstrip("/"): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def test_deleted_index_file(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = _setup(tmp_path, run)
    for p in (repo_path / "index").iterdir():
        p.unlink()
    r = run("check")
    assert r.code == 1
    assert "repair index" in r.out and "do not prune" in r.out  # never "prune removes it" here
    assert "prune deletes it" not in r.out
    r = run("repair", "index")
    assert r.code == 0, r.err
    assert run("check", "--read-data").code == 0
    assert _restored(run, tmp_path, "latest", "out") == _originals(data)


def test_damaged_index_file(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = _setup(tmp_path, run)
    idx = next((repo_path / "index").iterdir())
    idx.write_bytes(idx.read_bytes()[:-1] + b"\x00")
    r = run("check")
    assert r.code == 1 and "repair index" in r.out
    assert run("repair", "index").code == 0
    assert not idx.exists()
    assert run("check", "--read-data").code == 0
    assert _restored(run, tmp_path, "latest", "out") == _originals(data)


def _pack_of(repo_path: Path, min_size: int) -> Path:
    return next(
        p for p in sorted((repo_path / "data").rglob("*")) if p.is_file() and p.stat().st_size > min_size
    )


def test_deleted_pack(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = _setup(tmp_path, run)
    _pack_of(repo_path, 2_000_000).unlink()
    r = run("check")
    assert r.code == 1 and "repair snapshots" in r.out
    r = run("repair", "snapshots", "--forget")
    assert r.code == 3  # something was lost: never success
    lost = [line.strip() for line in r.out.splitlines() if "is missing" in line]
    assert lost and all("its pack" in line and "is gone" in line for line in lost)
    assert run("repair", "index").code == 0  # drop the missing pack from the index
    r = run("check", "--read-data")
    assert r.code == 0, r.out
    snaps = run("snapshots", "--json").json()
    assert len(snaps) == 1 and "repaired" in snaps[0]["tags"]
    got = _restored(run, tmp_path, "latest", "out")
    want = _originals(data)
    lost_names = {line.split(":")[0].lstrip("/") for line in lost}
    assert set(got) == set(want) - lost_names
    assert all(got[k] == want[k] for k in got)
    assert run("prune").code == 0 and run("check", "--read-data").code == 0


def test_damaged_pack(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = _setup(tmp_path, run)
    pack = _pack_of(repo_path, 2_000_000)
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0xFF  # inside the first blob
    pack.write_bytes(bytes(raw))
    r = run("check", "--read-data")
    assert r.code == 1 and "repair snapshots --read-data" in r.out
    assert run("repair", "snapshots").code == 0  # without reading data nothing looks lost
    r = run("repair", "snapshots", "--read-data", "--forget")
    assert r.code == 3, r.out + r.err
    lost = [line.strip() for line in r.out.splitlines() if "is damaged" in line]
    assert len(lost) == 1
    # the damaged pack is now used by no snapshot: prune deletes it, and everything left reads back
    pack_size = pack.stat().st_size
    # (with the default 5% a pack whose damaged blob is a small share of it would be kept as it is)
    r = run("prune", "--max-unused", "0%", "--json")
    assert r.code == 0, r.err
    assert not pack.exists() or pack.stat().st_size != pack_size
    assert run("check", "--read-data").code == 0
    got = _restored(run, tmp_path, "latest", "out")
    want = _originals(data)
    assert set(got) == set(want) - {lost[0].split(":")[0].lstrip("/")}
    assert all(got[k] == want[k] for k in got)


def test_damaged_snapshot_file(tmp_path: Path, run: Any, repo_path: Path) -> None:
    data = _setup(tmp_path, run)
    files(data / "small", range(40, 45), size=5_000)
    assert run("backup", str(data)).code == 0
    newest = run("snapshots", "--json").json()[-1]["id"]
    (repo_path / "snapshots" / newest).write_bytes(b"garbage")
    r = run("snapshots", "--json")
    assert r.code == 0 and len(r.json()) == 1 and "damaged snapshot file" in r.err
    r = run("restore", "latest", "--target", str(tmp_path / "out"))
    assert r.code == 0 and "damaged snapshot file skipped" in r.err  # the intact one is used
    assert run("prune").code == 1  # what the damaged one references is unknown
    r = run("check")
    assert r.code == 1 and "repair snapshots --forget" in r.out
    r = run("repair", "snapshots", "--forget")
    assert r.code == 3 and "cannot be read" in r.out
    assert newest not in os.listdir(repo_path / "snapshots")
    assert run("check", "--read-data").code == 0
    assert run("prune").code == 0
    assert run("check", "--read-data").code == 0
    assert len(listing(repo_path)) > 0
