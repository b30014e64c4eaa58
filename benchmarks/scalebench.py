"""Scale: a generated tree of N small files (issue 16's 250,000 and 1,000,000), timed step by step.

The tree holds ``--files`` files of ~110 bytes each (every one different, so every file is a blob of its
own in the index), 250 per folder, the folders 64 to a parent folder. Steps, each one command timed with
its CPU seconds and peak RSS (``benchmarks._measure.measure``):

- safehold: ``init``, the initial backup, ``--no-change`` no-change backups, ``check`` (structure: index,
  pack headers, every tree of the snapshots), ``check --read-data`` (with ``--read-data``), a full
  ``restore`` to disk and the same restore again into the restored tree (the restore *plan*: every tree
  walked and every file found complete, nothing written), each with the file count restored compared.
- restic 0.14 (``--tools restic``; ``restic-new`` for 0.18): ``init``, the initial backup and the
  no-change backups of the same tree, beside safehold's in the same run.

    python -m benchmarks.scalebench --files 250000 [--no-change 3] [--tools restic] [--read-data]
                                    [--restore] [--workdir DIR] [--json FILE] [--keep]

Everything is created below ``--workdir`` (default: the temporary folder) and removed at the end unless
``--keep``; the tree of 1,000,000 files takes ~4-5 GB on ext4 (a block per file), a restore as much again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._measure import Measured, measure
from benchmarks._tools import Restic, ResticNew, Safehold, Tool

PER_FOLDER = 250
FOLDERS_PER_PARENT = 64


def generate(root: Path, files: int, seed: int = 1) -> None:
    """``files`` different files of ~110 bytes, ``PER_FOLDER`` to a folder, ``FOLDERS_PER_PARENT``
    folders to a parent folder (``root/pNNN/dNNN/fNNN.txt``)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True)
    made = 0
    folder = 0
    while made < files:
        parent = root / f"p{folder // FOLDERS_PER_PARENT:04d}"
        d = parent / f"d{folder % FOLDERS_PER_PARENT:03d}"
        d.mkdir(parents=True, exist_ok=True)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(min(PER_FOLDER, files - made)):
                body = f"file {made:09d} of the scale benchmark {rnd.randbytes(36).hex()}\n".encode()
                fd = os.open(f"f{i:03d}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
                try:
                    os.write(fd, body)
                finally:
                    os.close(fd)
                made += 1
        finally:
            os.close(dfd)
        folder += 1


def count_files(root: Path) -> int:
    return sum(len(files) for _d, _dirs, files in os.walk(root))


def _row(m: Measured) -> dict[str, Any]:
    return {
        "seconds": m.seconds,
        "cpu": round(m.user + m.sys, 3),
        "maxrss_kib": m.maxrss_kib,
        "tree_pss_kib": m.tree_pss_kib,
        "ok": m.ok,
    }


def _step(result: dict[str, Any], tool: str, step: str, m: Measured) -> Measured:
    result["steps"].append({"tool": tool, "step": step, **_row(m)})
    print(
        f"{tool} {step}: {m.seconds:.2f} s wall, {m.user + m.sys:.2f} s CPU, "
        f"{m.maxrss_kib / 1024:.0f} MiB peak" + ("" if m.ok else f" FAILED {m.returncode}: {m.output_tail}"),
        file=sys.stderr,
        flush=True,
    )
    if not m.ok:
        raise SystemExit(f"{tool} {step} failed (exit {m.returncode})")
    return m


def _backups(t: Tool, repo: Path, src: Path, result: dict[str, Any], runs: int, log: Path) -> None:
    _step(result, t.name, "init", measure(t.init(repo), env=t.env(), log=log))
    _step(result, t.name, "initial backup", measure(t.backup(repo, src), env=t.env(), log=log, timeout=7200))
    for _ in range(runs):
        _step(result, t.name, "no-change backup", measure(t.backup(repo, src), env=t.env(), log=log))


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="safehold-scalebench-", dir=base))
    log = work / "log.txt"
    result: dict[str, Any] = {"files": args.files, "per_folder": PER_FOLDER, "steps": [], "notes": []}
    try:
        safehold = Safehold(work / "safehold" / "cache")
        if not safehold.available():
            raise SystemExit(f"safehold is not installed at {safehold.exe}")
        peers: list[Tool] = []
        for name in filter(None, args.tools.split(",")):
            t: Tool = Restic(work / name / "cache") if name == "restic" else ResticNew(work / name / "cache")
            if t.available():
                peers.append(t)
            else:
                result["notes"].append(f"{name} is not installed: skipped")
        result["versions"] = {t.name: t.version() for t in (safehold, *peers)}
        src = work / "data"
        t0 = time.perf_counter()
        generate(src, args.files, args.seed)
        os.sync()
        result["generate_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"generated {args.files} files in {result['generate_seconds']} s", file=sys.stderr, flush=True)
        repo = work / "safehold" / "repo"
        _backups(safehold, repo, src, result, args.no_change, log)
        env = safehold.env()
        _step(
            result,
            "safehold",
            "check",
            measure([safehold.exe, "--repo", str(repo), "check"], env=env, log=log),
        )
        if args.read_data:
            _step(result, "safehold", "check --read-data", measure(safehold.check(repo), env=env, log=log))
        if args.restore:
            target = work / "restore"
            target.mkdir()
            argv, _cwd = safehold.restore(repo, target)
            _step(result, "safehold", "restore", measure(argv, env=env, log=log, timeout=7200))
            restored = target / str(src).lstrip("/")
            n = count_files(restored)
            result["restored_files"] = n
            if n != args.files:
                raise SystemExit(f"restore put {n} files in place, not {args.files}")
            _step(result, "safehold", "restore plan (all complete)", measure(argv, env=env, log=log))
            shutil.rmtree(target)
        for t in peers:
            t.cache.mkdir(parents=True, exist_ok=True)
            _backups(t, work / t.name / "repo", src, result, args.no_change, log)
        return result
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    lines = [
        f"scale: {result['files']} files, {result['per_folder']} per folder (medians [lowest-highest])",
        f"{'tool':<11} {'step':<30} {'runs':>4} {'wall s':>22} {'CPU s':>8} {'peak RSS MiB':>13}",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in result["steps"]:
        groups.setdefault((s["tool"], s["step"]), []).append(s)
    for (tool, step), rows in groups.items():
        secs = [r["seconds"] for r in rows]
        cpu = statistics.median(r["cpu"] for r in rows)
        rss = max(r["maxrss_kib"] for r in rows) / 1024
        lines.append(
            f"{tool:<11} {step:<30} {len(rows):>4} {statistics.median(secs):>8.2f} "
            f"[{min(secs):.2f}-{max(secs):.2f}] {cpu:>8.2f} {rss:>13.1f}"
        )
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scalebench", description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=250_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-change", type=int, default=3, help="no-change backups per tool")
    p.add_argument("--tools", default="", help="peers beside safehold: restic, restic-new (comma-separated)")
    p.add_argument("--read-data", action="store_true", help="also time check --read-data")
    p.add_argument("--restore", action="store_true", help="also time a restore and the restore plan")
    p.add_argument("--workdir")
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
