"""The runner's table: per row, the median of the runs (lowest-highest in brackets) for every tool, the
baselines measured on the same tree in the same runs, and the per-run ratios of safehold to each restic; the
"CPU:" rows are user + system seconds of each timed step (the command and the helpers it waited for)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from benchmarks._tools import TOOL_ORDER

MIB = 1 << 20
Run = dict[str, Any]


def _seconds(step: dict[str, Any] | None) -> float | None:
    return step["seconds"] if step and step["returncode"] == 0 else None


def _cpu(step: dict[str, Any] | None) -> float | None:
    """User + system seconds of a step's command and the helpers it waited for."""
    if not step or step["returncode"] != 0 or "user" not in step:
        return None
    return float(step["user"] + step["sys"])


def _rows(change_label: str) -> list[tuple[str, str, Callable[[dict[str, Any]], float | None], str | None]]:
    """(label, format, value of a tool's run record, baseline key) per row."""

    def step(key: str) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: _seconds(r["steps"].get(key))

    def cpu(key: str) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: _cpu(r["steps"].get(key))

    def field(key: str, div: float) -> Callable[[dict[str, Any]], float | None]:
        return lambda r: r[key] / div if r.get(key) else None

    return [
        ("init (s)", ".2f", step("init"), None),
        ("initial backup (s)", ".2f", step("backup_initial"), "before"),
        ("no-change backup (s)", ".2f", step("backup_nochange"), "before"),
        (change_label, ".2f", step("backup_change"), "after"),
        ("restore to disk (s)", ".2f", step("restore_disk"), "cp_a_disk"),
        ("restore to tmpfs (s)", ".2f", step("restore_tmpfs"), "cp_a_tmpfs"),
        ("check, read all data (s)", ".2f", step("check"), None),
        ("repository size (MiB)", ".0f", field("repo_bytes", MIB), None),
        ("peak RSS, any step (MiB)", ".0f", field("peak_rss_kib", 1024), None),
        ("peak PSS, all processes (MiB)", ".0f", field("peak_tree_pss_kib", 1024), None),
        ("start to first file read (s)", ".2f", field("first_read_s", 1), None),
        ("CPU: init (s)", ".2f", cpu("init"), None),
        ("CPU: initial backup (s)", ".2f", cpu("backup_initial"), None),
        ("CPU: no-change backup (s)", ".2f", cpu("backup_nochange"), None),
        ("CPU: " + change_label.removesuffix(" (s)") + " (s)", ".2f", cpu("backup_change"), None),
        ("CPU: restore to disk (s)", ".2f", cpu("restore_disk"), None),
        ("CPU: restore to tmpfs (s)", ".2f", cpu("restore_tmpfs"), None),
        ("CPU: check, read all data (s)", ".2f", cpu("check"), None),
    ]


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = format(statistics.median(values), fmt)
    if len(values) == 1:
        return med
    return f"{med} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def _ratio_cell(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    spread = f" [{min(values):.2f}-{max(values):.2f}]" if len(values) > 1 else ""
    return f"{med:.2f}x{spread}"


def table(result: dict[str, Any], change_label: str) -> str:
    runs: list[Run] = result["runs"]
    tools = [t for t in TOOL_ORDER if any(t in r["tools"] for r in runs)]
    peers = [p for p in ("restic", "restic-new") if "safehold" in tools and p in tools]
    head = ["step", *tools, "tar|zstd -3", "read all", "cp -a", *(f"safehold/{p}" for p in peers)]
    rows = []
    for label, fmt, get, base in _rows(change_label):
        per_tool = {
            t: [v for r in runs if t in r["tools"] and (v := get(r["tools"][t])) is not None] for t in tools
        }
        if not any(per_tool.values()):
            continue
        row = [label, *(_cell(per_tool[t], fmt) for t in tools)]
        if base in ("before", "after"):
            for key in ("tar_zstd", "read_all"):
                vals = [v for r in runs if (v := _seconds(r["baseline"].get(base, {}).get(key))) is not None]
                row.append(_cell(vals, ".2f"))
            row.append("-")
        else:
            vals = [v for r in runs if base and (v := _seconds(r["baseline"].get(base))) is not None]
            row += ["-", "-", _cell(vals, ".2f")]
        for p in peers:
            ratios = []
            for r in runs:
                if "safehold" in r["tools"] and p in r["tools"]:
                    s, q = get(r["tools"]["safehold"]), get(r["tools"][p])
                    if s is not None and q:
                        ratios.append(s / q)
            row.append(_ratio_cell(ratios))
        rows.append(row)
    rows.append(["restore matches source",
                 *("yes" if all(r["tools"].get(t, {}).get("restore_ok") for r in runs) else "NO" for t in tools),
                 "", "", "", *("" for _ in peers)])  # fmt: skip
    versions = ", ".join(f"{t}: {v['version']}" for t, v in result.get("tools", {}).items())
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    title = f"{len(runs)} run(s); median [lowest-highest]; {versions}"
    return "\n".join([title, line(head), sep, *(line(r) for r in rows)])
