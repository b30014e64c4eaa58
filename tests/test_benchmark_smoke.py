"""The benchmark's data generator is deterministic and its daily change has the promised size.

A tiny scale (~3 MiB) keeps this file fast; the runner's own smoke run (restic only) is marked slow.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import pytest
import zstandard
from benchmarks import gen
from benchmarks._measure import tree_manifest

SCALE = 0.003


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "pristine"
    gen.generate(root, SCALE, seed=1)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_generate_is_deterministic_and_seed_dependent(pristine: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    stats = gen.generate(again, SCALE, seed=1)
    first, second = tree_manifest(pristine), tree_manifest(again)
    assert first == second
    assert stats.total_bytes == _size(again) <= 5 << 20
    other = tree_manifest(_gen(tmp_path / "other", seed=2))
    files = {k for k, v in first.items() if v[0] == "file"}
    assert sum(first[k] == other.get(k) for k in files) < len(files) // 2


def _gen(root: Path, seed: int) -> Path:
    gen.generate(root, SCALE, seed=seed)
    return root


def test_layout_and_compressibility(pristine: Path) -> None:
    small = gen.small_files(pristine)
    expect = sum(gen.scaled(n, SCALE) for n in (gen.CODE_FILES, gen.VENDOR_FILES, gen.NODE_FILES))
    assert len(small) == expect
    assert any("/vendor/" in str(p) for p in small) and any("/node_modules/" in str(p) for p in small)
    assert (pristine / "public" / "storage").readlink() == Path("../storage/app/public")
    assert len(gen.uploads(pristine)) == gen.scaled(gen.UPLOADS, SCALE)
    dump = (pristine / gen.DUMP_PATH).read_bytes()
    assert dump.startswith(b"-- MariaDB dump") and dump.count(b"CREATE TABLE") == 5
    assert abs(len(dump) - gen.DUMP_BYTES * SCALE) < 0.05 * gen.DUMP_BYTES * SCALE

    z = zstandard.ZstdCompressor(level=3)
    code = [p.read_bytes() for p in small if "/app/" in str(p)]
    assert all(2_000 <= len(c) <= 24_000 for c in code)
    ratio = sum(map(len, code)) / sum(len(z.compress(c)) for c in code)
    assert 2.5 < ratio < 6, ratio
    dump_ratio = len(dump) / len(z.compress(dump))
    assert 2.5 < dump_ratio < 6, dump_ratio
    up = [p.read_bytes() for p in gen.uploads(pristine)]
    incompressible = sum(len(u) for u in up if len(zlib.compress(u, 1)) > 0.95 * len(u))
    assert incompressible > 0.6 * sum(map(len, up))


def test_daily_change_has_the_promised_size(pristine: Path, tmp_path: Path) -> None:
    tree = _copy(pristine, tmp_path / "day1")
    before = tree_manifest(tree)
    old_dump = (tree / gen.DUMP_PATH).read_bytes()
    change = gen.apply_daily_change(tree, day=1)
    after = tree_manifest(tree)
    rel = lambda ps: {str(p.relative_to(tree)) for p in ps}  # noqa: E731

    small = rel(gen.small_files(tree))
    changed_small = {k for k in small if before[k] != after[k]}
    assert changed_small == rel(change.modified)
    assert len(changed_small) == max(1, round(0.01 * len(small)))
    assert len(change.added) == gen.scaled(20, SCALE) and len(change.deleted) == gen.scaled(10, SCALE)
    added, deleted = rel(change.added), rel(change.deleted)
    assert added.isdisjoint(before) and deleted <= before.keys() and deleted.isdisjoint(after)
    assert added <= after.keys() and all(after[k][0] == "dir" for k in after.keys() - before.keys() - added)
    untouched = before.keys() - deleted - changed_small - {str(gen.DUMP_PATH)}
    assert all(before[k] == after[k] for k in untouched if k in after and after[k][0] != "dir")

    new_dump = (tree / gen.DUMP_PATH).read_bytes()
    assert len(new_dump) - len(old_dump) == change.dump_bytes_added > 0
    first_diff = next(i for i, (a, b) in enumerate(zip(old_dump, new_dump, strict=False)) if a != b)
    assert 0.4 < first_diff / len(old_dump) < 0.6  # rows spliced into the middle ...
    tail = old_dump[-200:]
    assert new_dump.endswith(tail)  # ... and at the end of the last table, before the trailer
    assert new_dump.rfind(tail[:50]) > len(new_dump) - 300
    assert new_dump.count(b"),(") - old_dump.count(b"),(") == change.dump_rows_middle + change.dump_rows_end
    assert change.dump_rows_middle == gen.scaled(2_000, SCALE)

    twin = _copy(pristine, tmp_path / "twin")
    gen.apply_daily_change(twin, day=1)
    assert tree_manifest(twin) == after
    gen.apply_daily_change(twin, day=2)
    assert tree_manifest(twin) != after


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
def test_runner_smoke_with_restic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import run

    out = tmp_path / "out.json"
    rc = run.main(
        ["--scale", str(SCALE), "--tools", "safehold,restic", "--runs", "2", "--workdir", str(tmp_path),
         "--json", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    assert [r["order"] for r in result["runs"]] == [["safehold", "restic"], ["restic", "safehold"]]
    for r in result["runs"]:
        restic = r["tools"]["restic"]
        assert restic["restore_ok"] is True and not restic["errors"]
        assert {
            "init",
            "backup_initial",
            "backup_nochange",
            "backup_change",
            "restore_disk",
            "check",
        } <= restic["steps"].keys()
        assert all(
            s["returncode"] == 0 and s["seconds"] > 0 and s["maxrss_kib"] > 1000
            for s in restic["steps"].values()
        )
        assert (
            0
            < r["tools"]["safehold"]["first_read_s"]
            < r["tools"]["safehold"]["steps"]["backup_initial"]["seconds"]
        )
        assert {"tar_zstd", "read_all"} <= r["baseline"]["before"].keys() and "cp_a_disk" in r["baseline"]
    assert "restore to disk (s)" in printed and "safehold/restic" in printed and "tar|zstd" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # work dir and caches removed


def test_table_gives_medians_spread_and_per_run_ratios() -> None:
    from benchmarks._report import table

    def tool(sec: float) -> dict[str, object]:
        step = {"seconds": sec, "returncode": 0, "user": sec / 2, "sys": sec / 4}
        return {"steps": {"backup_initial": step}, "restore_ok": True, "version": "v"}

    runs = [{"tools": {"safehold": tool(s), "restic": tool(r)}, "baseline": {}}
            for s, r in ((1.0, 4.0), (3.0, 4.0), (2.0, 2.0))]  # fmt: skip
    text = table({"runs": runs}, "daily-change backup (s)")
    row = next(line for line in text.splitlines() if line.startswith("| initial backup"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    # safehold's median 2.00 of 1-3; restic's 4.00 of 2-4; ratio: median of 0.25, 0.75, 1.0 (per run)
    assert cells[1:3] == ["2.00 [1.00-3.00]", "4.00 [2.00-4.00]"]
    assert cells[-1] == "0.75x [0.25-1.00]"
    cpu = next(line for line in text.splitlines() if line.startswith("| CPU: initial backup"))
    cells = [c.strip() for c in cpu.split("|")[1:-1]]
    assert cells[1:3] == ["1.50 [0.75-2.25]", "3.00 [1.50-3.00]"] and cells[-1] == "0.75x [0.25-1.00]"


def test_measure_reports_the_childs_own_peak_rss(tmp_path: Path) -> None:
    import sys

    from benchmarks._measure import measure

    ballast = bytearray(128 << 20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # this process is now > 128 MiB resident
    log = tmp_path / "log.txt"
    small = measure(["true"], log=log)
    grow = f"import time\nb = bytearray({64 << 20})\nb[::4096] = b'x' * len(b[::4096])\ntime.sleep(0.5)"
    big = measure([sys.executable, "-I", "-S", "-c", grow], log=log)
    failed = measure([sys.executable, "-c", "raise SystemExit(3)"], log=log)
    assert small.ok and small.maxrss_kib < 20 << 10  # not this process's 128 MiB
    assert big.ok and 64 << 10 < big.maxrss_kib < 110 << 10
    assert 64 << 10 < big.tree_pss_kib < 110 << 10  # sampled while it slept; the wrapper not counted
    assert failed.returncode == 3 and "raise SystemExit" in failed.output_tail
    assert len(ballast) == 128 << 20
