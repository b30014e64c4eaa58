"""forget + prune after 30 daily changes: safehold next to restic on the same history, in the same run.

The generated data set (``benchmarks/gen.py``) is backed up once per day for ``--days`` days (each day
after the first gets ``apply_daily_change``), into a safehold and a restic repository, with the day as the
snapshot time. Then, ``--runs`` times and in rotating order, each tool's repository (and restic's cache)
is copied as it was after the history, and ``forget --keep-daily K --prune`` is timed on the copy:
wall time, peak RSS of the process (and the peak summed PSS of its process tree) and the repository size
afterwards. In the first run every pruned repository is checked (``check --read-data``, not timed) and its
latest snapshot restored and compared with the data set.

    python -m benchmarks.prunebench [--scale 0.2] [--days 30] [--keep-daily 7] [--runs 3]
                                    [--tools restic,restic-new] [--workdir DIR] [--json FILE] [--keep]

Both prunes use their defaults otherwise (5% unused data tolerated). The report gives each tool's median
and spread, and the median of the per-run ratios safehold / restic.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import gen
from benchmarks._measure import Measured, disk_usage, measure, tree_manifest
from benchmarks._tools import Restic, ResticNew, Safehold, Tool

START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def _forget_prune(tool: Tool, repo: Path, keep: int) -> list[str]:
    if isinstance(tool, Safehold):
        return [tool.exe, "--repo", str(repo), "forget", "--keep-daily", str(keep), "--prune"]
    return [tool.exe, "-r", str(repo), "forget", "--keep-daily", str(keep), "--prune"]


def _backup_at(tool: Tool, repo: Path, src: Path, when: datetime) -> list[str]:
    if isinstance(tool, Safehold):
        return [tool.exe, "--repo", str(repo), "backup", str(src), "--time", when.isoformat()]
    return [tool.exe, "-r", str(repo), "backup", str(src), "--time", when.strftime("%Y-%m-%d %H:%M:%S")]


def _ok(m: Measured, what: str) -> Measured:
    if not m.ok:
        raise SystemExit(f"{what} failed (exit {m.returncode}): {m.output_tail}")
    return m


def _history(tools: list[Tool], src: Path, work: Path, days: int, log: Path) -> dict[str, float]:
    """Back up ``days`` days into each tool's repository; returns each tool's seconds for the whole history."""
    spent = dict.fromkeys((t.name for t in tools), 0.0)
    for t in tools:
        _ok(measure(t.init(work / t.name / "repo"), env=t.env(), log=log), f"{t.name} init")
    for day in range(days):
        if day:
            gen.apply_daily_change(src, day)
        for t in tools:
            m = _ok(
                measure(
                    _backup_at(t, work / t.name / "repo", src, START + timedelta(days=day)),
                    env=t.env(),
                    log=log,
                ),
                f"{t.name} backup day {day}",
            )
            spent[t.name] += m.seconds
        print(f"day {day + 1}/{days} backed up", file=sys.stderr)
    return spent


def _repo_size(repo: Path) -> int:
    """Apparent bytes of the repository's own files (safehold's bootstrap/ wheels are not repository data)."""
    total = disk_usage(repo)[1]
    return total - disk_usage(repo / "bootstrap")[1] if (repo / "bootstrap").is_dir() else total


def _restore_matches(t: Tool, repo: Path, src: Path, target: Path, log: Path) -> bool:
    argv, cwd = t.restore(repo, target)
    target.mkdir(parents=True, exist_ok=True)
    if not measure(argv, env=t.env(), cwd=cwd or target, log=log).ok:
        return False
    restored = target / str(src).lstrip("/")
    ok = restored.is_dir() and tree_manifest(restored) == tree_manifest(src)
    shutil.rmtree(target, ignore_errors=True)
    return ok


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="safehold-prunebench-", dir=base))
    log = work / "log.txt"
    result: dict[str, Any] = {
        "scale": args.scale,
        "days": args.days,
        "keep_daily": args.keep_daily,
        "runs": [],
    }
    try:
        safehold = Safehold(work / "safehold" / "cache")
        if not safehold.available():  # (which also writes safehold's bytecode, as an installation does)
            raise SystemExit(f"safehold is not installed at {safehold.exe}")
        tools: list[Tool] = [safehold]
        for name in args.tools.split(","):
            t: Tool = Restic(work / name / "cache") if name == "restic" else ResticNew(work / name / "cache")
            if t.available():
                tools.append(t)
            else:
                result.setdefault("notes", []).append(f"{name} is not installed: skipped")
        for t in tools:
            t.cache.mkdir(parents=True, exist_ok=True)
        result["versions"] = {t.name: t.version() for t in tools}
        src = work / "data"
        gen.generate(src, args.scale, args.seed)
        result["history_seconds"] = _history(tools, src, work, args.days, log)
        result["size_before"] = {t.name: _repo_size(work / t.name / "repo") for t in tools}
        for r in range(args.runs):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            row: dict[str, Any] = {}
            for t in order:
                trial = work / f"run{r}" / t.name
                shutil.copytree(work / t.name / "repo", trial / "repo")
                saved_cache = t.cache
                shutil.copytree(t.cache, trial / "cache")
                t.cache = trial / "cache"
                try:
                    m = _ok(
                        measure(_forget_prune(t, trial / "repo", args.keep_daily), env=t.env(), log=log),
                        t.name,
                    )
                    row[t.name] = {
                        "seconds": m.seconds,
                        "user": m.user,
                        "sys": m.sys,
                        "maxrss_kib": m.maxrss_kib,
                        "tree_pss_kib": m.tree_pss_kib,
                        "size_after": _repo_size(trial / "repo"),
                    }
                    if r == 0:
                        row[t.name]["check_ok"] = measure(t.check(trial / "repo"), env=t.env(), log=log).ok
                        row[t.name]["restore_ok"] = _restore_matches(
                            t, trial / "repo", src, trial / "restore", log
                        )
                finally:
                    t.cache = saved_cache
                shutil.rmtree(trial)
            result["runs"].append(row)
            print(
                f"run {r + 1}/{args.runs}: " + ", ".join(f"{k} {v['seconds']:.2f}s" for k, v in row.items()),
                file=sys.stderr,
            )
        return result
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    names = list(runs[0]) if runs else []
    lines = [
        f"forget --keep-daily {result['keep_daily']} --prune after {result['days']} daily backups "
        f"(scale {result['scale']}, {len(runs)} run(s); medians [lowest-highest])",
        f"{'tool':<12} {'seconds':>22} {'peak RSS MiB':>22} {'tree PSS MiB':>14} {'size before':>12} {'size after':>12}",
    ]
    for n in names:
        secs = [r[n]["seconds"] for r in runs]
        rss = [r[n]["maxrss_kib"] / 1024 for r in runs]
        pss = [r[n]["tree_pss_kib"] / 1024 for r in runs]
        after = statistics.median(r[n]["size_after"] for r in runs) / 2**20
        before = result["size_before"][n] / 2**20
        lines.append(
            f"{n:<12} {statistics.median(secs):>8.2f} [{min(secs):.2f}-{max(secs):.2f}] "
            f"{statistics.median(rss):>8.1f} [{min(rss):.0f}-{max(rss):.0f}] {statistics.median(pss):>14.1f} "
            f"{before:>11.1f}M {after:>11.1f}M"
        )
    for n in names:
        if n == "safehold":
            continue
        ratios = [r["safehold"]["seconds"] / r[n]["seconds"] for r in runs]
        mem = [r["safehold"]["maxrss_kib"] / r[n]["maxrss_kib"] for r in runs]
        lines.append(
            f"safehold / {n}: time {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}], "
            f"peak RSS {statistics.median(mem):.2f}x"
        )
    if runs:
        checks = {n: (runs[0][n].get("check_ok"), runs[0][n].get("restore_ok")) for n in names}
        lines.append("first run: " + ", ".join(f"{n} check {c} restore {r}" for n, (c, r) in checks.items()))
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prunebench", description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--keep-daily", type=int, default=7)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tools", default="restic,restic-new")
    p.add_argument("--workdir")
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    first = result["runs"][0] if result["runs"] else {}
    good = all(v.get("check_ok") and v.get("restore_ok") for v in first.values())
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
