"""Benchmark runner: safehold, restic and borg on the same generated data set, in the same run.

Usage::

    python -m benchmarks.run [--scale 1.0] [--seed 1] [--tools safehold,restic,borg]
                             [--workdir DIR] [--tmpfs DIR] [--data DIR] [--json out.json] [--keep]

For each tool, in the same order (so page-cache conditions are comparable; the page cache is never
dropped, and every step starts after ``sync``): copy the pristine tree (``cp -a``, not timed), init a
repository, initial backup, no-change backup, apply day 1's change (not timed), daily-change backup,
full restore of the latest snapshot to disk (then compared with the source tree, not timed) and to a
tmpfs, full data check, repository size (``du``), caches size. Every command's wall time, CPU time
and peak RSS come from ``os.wait4`` (RSS of the largest single process); the summed PSS of the command
and every helper process it starts is sampled every 50 ms. ``cp -a`` of the changed tree to disk and to the tmpfs is the
baseline for the restore rows. Prints a table and, with ``--json``, writes every measurement.

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

from benchmarks._measure import Measured, compare_trees, disk_usage, measure, remove, tmpfs
from benchmarks._tools import TOOL_ORDER, Tool, find_restored, make_tool
from benchmarks.gen import DUMP_PATH, Stats, apply_daily_change, generate

STEPS = (
    ("init", "init (s)"),
    ("backup_initial", "initial backup (s)"),
    ("backup_nochange", "no-change backup (s)"),
    ("backup_daily", "daily-change backup (s)"),
    ("restore_disk", "restore to disk (s)"),
    ("restore_tmpfs", "restore to tmpfs (s)"),
    ("check", "check, read all data (s)"),
)
BASELINE = {"restore_disk": "cp_a_disk", "restore_tmpfs": "cp_a_tmpfs"}
MIB = 1 << 20


def _cp(src: Path, dst: Path, log: Path) -> Measured:
    return measure(["cp", "-a", str(src), str(dst)], log=log)


def run_tool(tool: Tool, pristine: Path, work: Path, tmp: Path | None, scale: float) -> dict[str, Any]:
    """All steps of one tool; returns its result record (steps, sizes, restore check, errors)."""
    base = work / tool.name
    src, repo, target, log = base / "src", base / "repo", base / "restore", base / "log.txt"
    base.mkdir(parents=True)
    res: dict[str, Any] = {
        "version": tool.version(),
        "steps": {},
        "errors": [],
        "loadavg_before": os.getloadavg(),
    }
    steps: dict[str, dict[str, Any]] = res["steps"]

    def step(key: str, cmd: list[str], cwd: Path | None = None) -> bool:
        os.sync()
        m = measure(cmd, env=tool.env(), cwd=cwd, log=log)
        steps[key] = m.as_json()
        if not m.ok:
            res["errors"].append(f"{key}: exit {m.returncode}: {m.output_tail[-600:]}")
        return m.ok

    prep = _cp(pristine, src, log)
    if not prep.ok:
        res["errors"].append(f"copying the data set failed: {prep.output_tail}")
        return res
    try:
        ok = step("init", tool.init(repo))
        ok = ok and step("backup_initial", tool.backup(repo, src))
        ok = ok and step("backup_nochange", tool.backup(repo, src))
        if ok:
            apply_daily_change(src, day=1, scale=scale)
            ok = step("backup_daily", tool.backup(repo, src))
        if ok:
            target.mkdir()
            cmd, cwd = tool.restore(repo, target)
            if step("restore_disk", cmd, cwd):
                restored = find_restored(target, src, DUMP_PATH)
                diffs = compare_trees(src, restored) if restored else [f"restored tree not found in {target}"]
                res["restore_ok"], res["restore_diffs"] = not diffs, diffs
                if diffs:
                    res["errors"].append(f"restore differs from source: {diffs}")
            remove(target)
            if tmp is not None:
                ttarget = tmp / tool.name
                ttarget.mkdir()
                cmd, cwd = tool.restore(repo, ttarget)
                step("restore_tmpfs", cmd, cwd)
                remove(ttarget)
            step("check", tool.check(repo))
        if repo.exists():
            res["repo_bytes"], res["repo_apparent_bytes"] = disk_usage(repo)
        res["cache_bytes"] = disk_usage(tool.cache)[0] if tool.cache.exists() else 0
        res["peak_rss_kib"] = max((s["maxrss_kib"] for s in steps.values()), default=0)
        res["peak_tree_pss_kib"] = max((s.get("tree_pss_kib", 0) for s in steps.values()), default=0)
        res["loadavg_after"] = os.getloadavg()
    finally:
        for p in (src, repo, target, tool.cache):
            remove(p)
    return res


def run_baseline(pristine: Path, work: Path, tmp: Path | None, scale: float) -> dict[str, Any]:
    """``cp -a`` of the day-1 tree (what the restores produce) to disk and to the tmpfs."""
    base = work / "cp-a"
    src, log = base / "src", base / "log.txt"
    base.mkdir(parents=True)
    out: dict[str, Any] = {}
    try:
        _cp(pristine, src, log)
        apply_daily_change(src, day=1, scale=scale)
        os.sync()
        out["cp_a_disk"] = _cp(src, base / "copy", log).as_json()
        remove(base / "copy")
        if tmp is not None:
            out["cp_a_tmpfs"] = _cp(src, tmp / "cp-a", log).as_json()
            remove(tmp / "cp-a")
    finally:
        remove(base)
    return out


def _fmt_cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(result: dict[str, Any]) -> str:
    """The human-readable table: one row per step, one column per tool, cp -a, safehold/restic."""
    tools = [t for t in TOOL_ORDER if t in result["tools"]]
    ratio = "safehold" in tools and "restic" in tools
    head = ["step", *tools, "cp -a"] + (["safehold/restic"] if ratio else [])
    rows: list[list[str]] = []

    def value(tool: str, key: str) -> float | None:
        r = result["tools"][tool]
        if key == "repo":
            return r["repo_bytes"] / MIB if "repo_bytes" in r else None
        if key == "rss":
            return r["peak_rss_kib"] / 1024 if r.get("peak_rss_kib") else None
        if key == "pss":
            return r["peak_tree_pss_kib"] / 1024 if r.get("peak_tree_pss_kib") else None
        s = r["steps"].get(key)
        return s["seconds"] if s and s["returncode"] == 0 else None

    spec = [(k, label, ".2f") for k, label in STEPS] + [("repo", "repository size (MiB)", ".0f"),
                                                           ("rss", "peak RSS, any step (MiB)", ".0f"),
                                                           ("pss", "peak PSS, all processes (MiB)", ".0f")]  # fmt: skip
    for key, label, fmt in spec:
        vals = {t: value(t, key) for t in tools}
        if all(v is None for v in vals.values()) and key not in BASELINE:
            continue
        base = result["baseline"].get(BASELINE.get(key, ""))
        row = [
            label,
            *(_fmt_cell(vals[t], fmt) for t in tools),
            _fmt_cell(base["seconds"] if base else None, ".2f"),
        ]
        if ratio:
            s, r = vals["safehold"], vals["restic"]
            row.append("-" if s is None or not r else f"{s / r:.2f}x {'ok' if s <= r else 'OVER'}")
        rows.append(row)
    ok_row = [
        "restore matches source",
        *("yes" if result["tools"][t].get("restore_ok") else "NO" for t in tools),
        "",
    ]
    rows.append(ok_row + ([""] if ratio else []))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def _machine() -> dict[str, Any]:
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": mem,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="data set scale (1.0 = about 1 GiB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--tools", default=",".join(TOOL_ORDER), help="comma-separated subset of safehold,restic,borg"
    )
    ap.add_argument(
        "--workdir", type=Path, help="where trees, repositories and caches go (default: a temp dir)"
    )
    ap.add_argument("--tmpfs", type=Path, help="an existing tmpfs directory for the tmpfs columns")
    ap.add_argument("--data", type=Path, help="reuse (or generate and keep) the pristine tree here")
    ap.add_argument("--json", type=Path, dest="json_out", help="write all measurements here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    unknown = [t for t in args.tools.split(",") if t.strip() and t.strip() not in TOOL_ORDER]
    if unknown:
        ap.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOL_ORDER)}")
    if args.scale <= 0:
        ap.error("--scale must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    work = Path(tempfile.mkdtemp(prefix="safehold-bench-", dir=args.workdir)).resolve()
    tools = [make_tool(n, work / f"{n}-cache") for n in names]
    result: dict[str, Any] = {"scale": args.scale, "seed": args.seed, "machine": _machine(), "notes": [],
                              "tools": {}, "baseline": {}}  # fmt: skip
    notes: list[str] = result["notes"]
    notes.append("page cache not dropped: each tool runs the same steps in the same order, after sync")
    try:
        pristine = (args.data or work / "pristine").resolve()
        if (pristine / DUMP_PATH).exists():
            notes.append(f"data set reused from {pristine}")
        else:
            t0 = time.perf_counter()
            st: Stats = generate(pristine, args.scale, args.seed)
            result["data"] = {**st.__dict__, "generate_seconds": round(time.perf_counter() - t0, 2)}
            print(
                f"generated {st.total_bytes / MIB:.0f} MiB in {result['data']['generate_seconds']} s",
                flush=True,
            )
        result["data_bytes"] = disk_usage(pristine)[1]
        with tmpfs(work, args.tmpfs, max(3, math.ceil(3 * args.scale))) as (tmp, note):
            notes.append(note)
            print(note, flush=True)
            result["baseline"] = run_baseline(pristine, work, tmp, args.scale)
            for tool in tools:
                if not tool.available():
                    notes.append(f"{tool.name}: not found ({tool.exe}), skipped")
                    print(notes[-1], flush=True)
                    continue
                print(f"running {tool.name} ...", flush=True)
                result["tools"][tool.name] = run_tool(tool, pristine, work, tmp, args.scale)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = table(result)
    print(text)
    for n in notes:
        print(f"note: {n}")
    busy = [
        n
        for n, r in result["tools"].items()
        if r.get("loadavg_before", (0,))[0] > 0.5 * (os.cpu_count() or 1)
    ]
    if busy:
        print(f"note: the machine was busy (1-min load above half the cores) before: {', '.join(busy)}")
    failed = [f"{name}: {e}" for name, r in result["tools"].items() for e in r["errors"]]
    for f in failed:
        print(f"ERROR {f}", file=sys.stderr)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if failed or not result["tools"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
