"""Benchmark runner: safehold, restic (two versions) and borg on the same data, step by step, in one run.

Usage::

    python -m benchmarks.run [--data-set generated|corpus] [--scale 1.0] [--seed 1] [--runs 3]
                             [--tools safehold,restic,restic-new,borg] [--workdir DIR] [--tmpfs DIR]
                             [--data DIR] [--json out.json] [--keep]

Every tool gets its own copy of the data set (``cp -a``, not timed), and the tools then go through the
steps together: init, initial backup, no-change backup, the change (not timed: the generated set's
day-1 change, or the corpus's upgrade to its second version), the backup after the change, a full
restore to disk (compared with the source, not timed) and to a tmpfs, and a full data check. Each step
runs every tool before the next step starts, in an order that rotates from run to run, so load on the
machine falls on every tool alike. The page cache is never dropped; every step starts after ``sync``.

Next to the backup rows the runner times, on the same tree, ``tar -cf - | zstd -T0 -3 > /dev/null``
and reading every byte (``find -type f -exec cat {} + > /dev/null``); next to the restore rows,
``cp -a`` of the same tree to disk and to the tmpfs. For safehold it also records the time from the
process's start to its first read of a file (start-up: interpreter, imports, index and cache loading).

With ``--runs N`` the table gives, per row, the median over the runs and (in brackets) the lowest and
highest value; the ratio columns are medians of the per-run ratios (each ratio within one run).
Exit status: 0 when every step of every tool succeeded and every restore matched its source, else 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._datasets import DataSet, make_data_set
from benchmarks._measure import Measured, compare_trees, disk_usage, measure, remove, tmpfs
from benchmarks._report import table
from benchmarks._tools import TOOL_ORDER, Tool, find_restored, make_tool

MIB = 1 << 20


class Lane:
    """One tool's folders and results within one run."""

    def __init__(self, tool: Tool, base: Path) -> None:
        self.tool = tool
        self.base = base
        self.src, self.repo, self.target, self.log = (
            base / "src",
            base / "repo",
            base / "restore",
            base / "log.txt",
        )
        self.res: dict[str, Any] = {"version": tool.version(), "steps": {}, "errors": []}
        self.ok = True

    def step(
        self, key: str, cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> bool:
        if not self.ok:
            return False
        os.sync()
        m = measure(cmd, env=env or self.tool.env(), cwd=cwd, log=self.log)
        self.res["steps"][key] = m.as_json()
        if not m.ok:
            self.res["errors"].append(f"{key}: exit {m.returncode}: {m.output_tail[-600:]}")
            self.ok = False
        return m.ok


def _baseline(src: Path, log: Path) -> dict[str, Any]:
    """tar|zstd and read-every-byte of ``src`` (a tree as the backups see it)."""
    tar = measure(["bash", "-c", 'tar -C "$1" -cf - . | zstd -T0 -3 -q > /dev/null', "-", str(src)], log=log)
    read = measure(["bash", "-c", 'find "$1" -type f -exec cat {} + > /dev/null', "-", str(src)], log=log)
    return {"tar_zstd": tar.as_json(), "read_all": read.as_json()}


def _cp(src: Path, dst: Path, log: Path) -> Measured:
    return measure(["cp", "-a", str(src), str(dst)], log=log)


def one_run(data: DataSet, tools: list[Tool], work: Path, tmp: Path | None, run: int) -> dict[str, Any]:
    """All steps of all tools once; the order of the tools rotates with ``run``."""
    k = run % len(tools)
    order = tools[k:] + tools[:k]
    lanes = [Lane(t, work / f"run{run}" / t.name) for t in order]
    out: dict[str, Any] = {"order": [t.name for t in order], "loadavg_before": os.getloadavg(),
                           "tools": {}, "baseline": {}}  # fmt: skip
    out["tools"] = {lane.tool.name: lane.res for lane in lanes}
    base_log = work / f"run{run}" / "baseline-log.txt"
    try:
        for lane in lanes:
            lane.base.mkdir(parents=True)
            data.prepare(lane.src)
        os.sync()
        out["baseline"]["before"] = _baseline(lanes[0].src, base_log)
        for lane in lanes:
            lane.step("init", lane.tool.init(lane.repo))
        for lane in lanes:
            first = lane.base / "first-read"
            cmd, env = lane.tool.backup_timed(lane.repo, lane.src, first)
            if lane.step("backup_initial", cmd, env=env) and first.exists():
                lane.res["first_read_s"] = float(first.read_text())
        for lane in lanes:
            lane.step("backup_nochange", lane.tool.backup(lane.repo, lane.src))
        for lane in lanes:
            data.change(lane.src)
        os.sync()
        out["baseline"]["after"] = _baseline(lanes[0].src, base_log)
        for lane in lanes:
            lane.step("backup_change", lane.tool.backup(lane.repo, lane.src))
        cp_dst = work / f"run{run}" / "cp-a"
        out["baseline"]["cp_a_disk"] = _cp(lanes[0].src, cp_dst, base_log).as_json()
        # Nothing is deleted on the disk until every tool has restored: right after a big tree is
        # removed, ext4 (here without a journal) scans the recently freed inodes on every file it
        # creates, which made whichever tool restored next pay for the previous tool's clean-up.
        for lane in lanes:
            lane.target.mkdir()
            cmd, cwd = lane.tool.restore(lane.repo, lane.target)
            if lane.step("restore_disk", cmd, cwd):
                restored = find_restored(lane.target, lane.src, data.marker)
                diffs = (
                    compare_trees(lane.src, restored)
                    if restored
                    else [f"restored tree not found in {lane.target}"]
                )
                lane.res["restore_ok"], lane.res["restore_diffs"] = not diffs, diffs
                if diffs:
                    lane.res["errors"].append(f"restore differs from source: {diffs}")
        remove(cp_dst)
        for lane in lanes:
            remove(lane.target)
        if tmp is not None:
            out["baseline"]["cp_a_tmpfs"] = _cp(lanes[0].src, tmp / "cp-a", base_log).as_json()
            remove(tmp / "cp-a")
            for lane in lanes:
                ttarget = tmp / lane.tool.name
                ttarget.mkdir()
                cmd, cwd = lane.tool.restore(lane.repo, ttarget)
                lane.step("restore_tmpfs", cmd, cwd)
                remove(ttarget)
        for lane in lanes:
            lane.step("check", lane.tool.check(lane.repo))
        for lane in lanes:
            r = lane.res
            if lane.repo.exists():
                r["repo_bytes"], r["repo_apparent_bytes"] = disk_usage(lane.repo)
            r["cache_bytes"] = disk_usage(lane.tool.cache)[0] if lane.tool.cache.exists() else 0
            r["peak_rss_kib"] = max((s["maxrss_kib"] for s in r["steps"].values()), default=0)
            r["peak_tree_pss_kib"] = max((s.get("tree_pss_kib", 0) for s in r["steps"].values()), default=0)
    finally:
        for lane in lanes:
            for p in (lane.src, lane.repo, lane.target, lane.tool.cache):
                remove(p)
    out["loadavg_after"] = os.getloadavg()
    return out


def _machine() -> dict[str, Any]:
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {"cpus": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
            "python": sys.version.split()[0]}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--data-set", choices=["generated", "corpus"], default="generated")
    ap.add_argument("--scale", type=float, default=1.0, help="generated set's size (1.0 = about 1 GiB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1, help="repeat the whole run; the table shows medians")
    ap.add_argument(
        "--tools", default=",".join(TOOL_ORDER), help=f"comma-separated subset of {','.join(TOOL_ORDER)}"
    )
    ap.add_argument(
        "--workdir", type=Path, help="where trees, repositories and caches go (default: a temp dir)"
    )
    ap.add_argument("--tmpfs", type=Path, help="an existing tmpfs directory for the tmpfs rows")
    ap.add_argument("--data", type=Path, help="generated: reuse (or generate and keep) the tree here; "
                    "corpus: the corpus cache (default /var/cache/safehold-bench-corpus)")  # fmt: skip
    ap.add_argument("--json", type=Path, dest="json_out", help="write all measurements here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    unknown = [t for t in args.tools.split(",") if t.strip() and t.strip() not in TOOL_ORDER]
    if unknown:
        ap.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOL_ORDER)}")
    if args.scale <= 0 or args.runs < 1:
        ap.error("--scale must be positive and --runs at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    work = Path(tempfile.mkdtemp(prefix="safehold-bench-", dir=args.workdir)).resolve()
    all_tools = [make_tool(n, work / f"{n}-cache") for n in names]
    result: dict[str, Any] = {"data_set": args.data_set, "scale": args.scale, "seed": args.seed,
                              "machine": _machine(), "notes": [], "runs": []}  # fmt: skip
    notes: list[str] = result["notes"]
    notes.append("page cache not dropped; every step runs each tool in turn (rotating order), after sync")
    tools: list[Tool] = []
    for tool in all_tools:
        if tool.available():
            tools.append(tool)
        else:
            notes.append(f"{tool.name}: not found ({tool.exe}), skipped")
            print(notes[-1], flush=True)
    try:
        t0 = time.perf_counter()
        data = make_data_set(args.data_set, work, args.data, args.scale, args.seed)
        result["data"] = {**data.describe(), "prepare_seconds": round(time.perf_counter() - t0, 2)}
        print(f"data set: {data.title} {result['data']}", flush=True)
        with tmpfs(work, args.tmpfs, max(3, math.ceil(3 * data.gib))) as (tmp, note):
            notes.append(note)
            print(note, flush=True)
            for run in range(args.runs):
                print(f"run {run + 1} of {args.runs} ...", flush=True)
                result["runs"].append(one_run(data, tools, work, tmp, run))
                if args.json_out:
                    args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["tools"] = {t.name: {"version": r["tools"][t.name]["version"]} for r in result["runs"][:1]
                       for t in tools if t.name in r["tools"]}  # fmt: skip
    print(table(result, data.change_label))
    for n in notes:
        print(f"note: {n}")
    busy = [
        i + 1 for i, r in enumerate(result["runs"]) if r["loadavg_before"][0] > 0.5 * (os.cpu_count() or 1)
    ]
    if busy:
        print(f"note: the machine was busy (1-min load above half the cores) before run(s) {busy}")
    failed = [f"run {i + 1} {name}: {e}" for i, r in enumerate(result["runs"])
              for name, t in r["tools"].items() for e in t["errors"]]  # fmt: skip
    for f in failed:
        print(f"ERROR {f}", file=sys.stderr)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed or not tools else 0


if __name__ == "__main__":
    raise SystemExit(main())
