"""``safehold report --html FILE``: one self-contained HTML page (no external assets, no server) that shows
whether the backups can be relied on: the objectives as ``status`` measures them, the snapshots of each host
and profile on a timeline, repository growth, backup and drill durations against the RTO, snapshot age
against the RPO, the last check, and the table behind every plot.

Plots are inline SVG drawn here (a few lines each; no plotting library needed). Every plotted mark carries
its number in ``data-value`` and the figures of ``status`` are embedded as JSON (``#safehold-status``), so a
test can read the page in a browser and compare. Every string that came from the repository (host and
profile names, messages) is HTML-escaped: other hosts write them.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
from dataclasses import dataclass
from typing import Any

from safehold.config.schema import Config
from safehold.engine.format.repository import Repository
from safehold.engine.format.snapshot import Snapshot
from safehold.engine.util import human_bytes
from safehold.operations.observe import results as results_mod
from safehold.operations.observe.results import Result
from safehold.operations.observe.status import Status, compute_status, human_duration

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 860, 220, 70, 30, 14, 20


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]  # (epoch seconds, value)
    css: str


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def _time_ticks(x0: float, x1: float, sx: Any, height: int) -> list[str]:
    ticks = _ticks(x0, x1)
    out = []
    for i, t in enumerate(ticks):
        label = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        out.append(
            f'<text class="axis" x="{sx(t):.1f}" y="{height - 8}" text-anchor="{anchor}">{label}</text>'
        )
    return out


def _svg_plot(
    title: str,
    series: list[Series],
    *,
    fmt: Any,
    line: tuple[str, float] | None = None,
    bars: bool = False,
) -> str:
    """A time plot: x = time, y = value; ``line`` a horizontal objective (label, value)."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return f'<p class="empty">{_e(title)}: no data yet.</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    if x1 == x0:
        x0, x1 = x0 - 3600, x1 + 3600
    y1 = max([p[1] for p in pts] + ([line[1]] if line else [])) * 1.1 or 1.0
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * iw

    def sy(y: float) -> float:
        return PAD_T + ih - y / y1 * ih

    out = [f'<svg class="plot" viewBox="0 0 {W} {H}" role="img" aria-label="{_e(title)}">']
    for t in _ticks(0, y1):
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>')
        out.append(
            f'<text class="axis" x="{PAD_L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_e(fmt(t))}</text>'
        )
    out += _time_ticks(x0, x1, sx, H)
    if line is not None:
        out.append(
            f'<line class="objective" x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(line[1]):.1f}" y2="{sy(line[1]):.1f}" '
            f'data-value="{line[1]:g}"/><text class="objective-label" x="{W - PAD_R}" y="{sy(line[1]) - 4:.1f}" '
            f'text-anchor="end">{_e(line[0])}</text>'
        )
    for s in series:
        ordered = sorted(s.points)
        if not bars and len(ordered) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ordered)
            out.append(f'<polyline class="{s.css}" points="{path}"/>')
        for x, y in ordered:
            when = dt.datetime.fromtimestamp(x, dt.UTC).strftime("%Y-%m-%d %H:%M")
            tip = f"{s.label} {when}: {fmt(y)}"
            if bars:
                out.append(
                    f'<rect class="{s.css} mark" x="{sx(x) - 3:.1f}" y="{sy(y):.1f}" width="6" '
                    f'height="{max(sy(0) - sy(y), 0.5):.1f}" data-series="{_e(s.label)}" data-time="{x:.0f}" '
                    f'data-value="{y:g}"><title>{_e(tip)}</title></rect>'
                )
            else:
                out.append(
                    f'<circle class="{s.css} mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" '
                    f'data-series="{_e(s.label)}" data-time="{x:.0f}" data-value="{y:g}"><title>{_e(tip)}</title></circle>'
                )
    legend = " ".join(f'<span class="key {s.css}">{_e(s.label)}</span>' for s in series)
    out.append("</svg>")
    return f"<figure><figcaption>{_e(title)} {legend}</figcaption>{''.join(out)}</figure>"


def _timeline(snaps: list[Snapshot]) -> str:
    """One row per host/profile, a mark per snapshot: filled complete, hollow partial."""
    rows = sorted({(s.hostname, s.profile or "(paths)") for s in snaps})
    if not rows:
        return '<p class="empty">No snapshots yet.</p>'
    times = [s.datetime.timestamp() for s in snaps]
    x0, x1 = min(times), max(times)
    if x1 == x0:
        x0, x1 = x0 - 3600, x1 + 3600
    height = PAD_T + 26 * len(rows) + PAD_B
    left = 200
    iw = W - left - PAD_R

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * iw

    out = [f'<svg class="timeline" viewBox="0 0 {W} {height}" role="img" aria-label="snapshots">']
    for i, (host, prof) in enumerate(rows):
        y = PAD_T + 26 * i + 13
        out.append(
            f'<text class="axis" x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(host)} / {_e(prof)}</text>'
        )
        out.append(f'<line class="grid" x1="{left}" x2="{W - PAD_R}" y1="{y}" y2="{y}"/>')
        for s in snaps:
            if (s.hostname, s.profile or "(paths)") != (host, prof):
                continue
            t = s.datetime.timestamp()
            css = "partial" if s.partial else "complete"
            out.append(
                f'<circle class="snap {css}" cx="{sx(t):.1f}" cy="{y}" r="5" data-id="{_e(s.id)}" '
                f'data-time="{t:.0f}"><title>{_e(s.short_id)} {_e(s.time[:19])} {css}</title></circle>'
            )
    out += _time_ticks(x0, x1, sx, height)
    out.append("</svg>")
    return "".join(out)


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<details class="data {cls}"><summary>Table ({len(rows)} rows)</summary><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>'


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde}
.meta{color:#667}.ok{color:#146c2e}.bad{color:#b3261e;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:12.5px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}
svg{width:100%;height:auto;background:#fafbfd;border:1px solid #e4e7ee;border-radius:4px}
.grid{stroke:#e3e6ec;stroke-width:1}.axis{font-size:11px;fill:#667}
.objective{stroke:#b3261e;stroke-dasharray:6 4;stroke-width:1.5}.objective-label{font-size:11px;fill:#b3261e}
polyline{fill:none!important;stroke-width:1.8}.s1{stroke:#2f5fb3;fill:#2f5fb3}.s2{stroke:#c77c02;fill:#c77c02}.s3{stroke:#2e7d32;fill:#2e7d32}
rect.s1,rect.s2{stroke:none}.snap.complete{fill:#2e7d32}.snap.partial{fill:#fff;stroke:#c77c02;stroke-width:2}
figure{margin:8px 0}figcaption{font-weight:600;margin-bottom:4px}.key{font-weight:400;font-size:12px;margin-left:10px}
.key::before{content:"";display:inline-block;width:10px;height:10px;margin-right:4px;background:currentColor}
.key.s1{color:#2f5fb3}.key.s2{color:#c77c02}.key.s3{color:#2e7d32}details.data{margin:6px 0 0}.empty{color:#889}
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('safehold-status').textContent);
  var marks = document.querySelectorAll('.mark');
  document.body.dataset.marks = String(marks.length);
  document.body.dataset.breached = String(data.objectives.filter(function (o) { return !o.ok; }).length);
  document.body.dataset.ready = '1';
})();
"""


def _objectives(st: Status) -> str:
    if not st.objectives:
        return '<p class="empty">No objectives configured ([objectives] rpo and rto).</p>'
    rows = []
    for o in st.objectives:
        where = " / ".join(x for x in (o.host, o.profile) if x) or "repository"
        cls = "ok" if o.ok else "bad"
        rows.append(
            f'<tr class="objective-row" data-name="{_e(o.name)}" data-ok="{int(o.ok)}"><td class="{cls}">'
            f"{'met' if o.ok else 'BREACHED'}</td><td>{_e(o.name.upper())}</td><td>{_e(where)}</td><td>{_e(o.message)}</td></tr>"
        )
    return (
        "<table><thead><tr><th></th><th>objective</th><th>where</th><th>measured</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def render_report(
    repo: Repository, config: Config, hosts: list[str] | None, now: dt.datetime | None = None
) -> tuple[str, Status]:
    """The page and the status it shows."""
    now = now or dt.datetime.now(dt.UTC)
    found: list[Result] = results_mod.load(repo)
    st = compute_status(repo, config, now=now, hosts=hosts, results=found)
    snaps = sorted(
        (s for s in repo.iter_snapshots() if "safety" not in s.tags and s.ahead(now) is None),
        key=lambda s: (s.datetime, s.id),
    )
    drills = [r for r in found if r.type == "drill"]
    rto = next((d.rto_seconds for d in st.drills if d.rto_seconds is not None), None)

    total = 0
    growth: list[tuple[float, float]] = []
    added: list[tuple[float, float]] = []
    durations: list[tuple[float, float]] = []
    for s in snaps:
        t = s.datetime.timestamp()
        new = float(s.summary.get("added_bytes_new_stored", 0) or 0)
        total += int(new)
        growth.append((t, float(total)))
        added.append((t, new))
        if s.summary.get("duration_seconds") is not None:
            durations.append((t, float(s.summary["duration_seconds"])))
    drill_pts = [(r.started.timestamp(), r.seconds) for r in drills]

    # snapshot age against the RPO: per profile with an RPO, how old the newest complete snapshot had
    # become just before each new one (and now)
    age_series: list[Series] = []
    rpo_line: tuple[str, float] | None = None
    age_rows: list[list[Any]] = []
    for p in st.profiles:
        if p.rpo_seconds is None or p.host not in st.hosts:
            continue
        mine = [s for s in snaps if s.hostname == p.host and s.profile == p.profile and not s.partial]
        pts: list[tuple[float, float]] = []
        for a, b in itertools.pairwise(mine):
            pts.append((b.datetime.timestamp(), (b.datetime - a.datetime).total_seconds() / 3600))
        if p.newest_complete is not None:
            pts.append((now.timestamp(), p.newest_complete.age_seconds / 3600))
        age_series.append(Series(f"{p.host}/{p.profile or '(paths)'}", pts, f"s{len(age_series) % 3 + 1}"))
        rpo_line = (f"RPO {human_duration(p.rpo_seconds)}", p.rpo_seconds / 3600)
        age_rows += [
            [
                f"{p.host}/{p.profile}",
                dt.datetime.fromtimestamp(x, dt.UTC).isoformat(timespec="minutes"),
                f"{y:.2f}",
            ]
            for x, y in pts
        ]

    r = st.repository
    check = st.last_check
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>safehold report {_e(st.time[:16])}</title><style>{CSS}</style></head><body>",
        "<h1>safehold report</h1>",
        f'<p class="meta">{_e(st.time)} · hosts {_e(", ".join(st.hosts) or "-")} · '
        f"{r.snapshots} snapshots · {_e(human_bytes(r.size_bytes))} stored · deduplication "
        f"{_e(f'{r.dedup_ratio:g}x' if r.dedup_ratio else '-')} · {_e(human_bytes(r.added_30d_bytes))} added in 30 days</p>",
        "<h2>Objectives</h2>",
        _objectives(st),
        "<h2>Snapshots</h2>",
        _timeline(snaps),
        _table(
            ["id", "time", "host", "profile", "complete", "files", "size", "added"],
            [
                [
                    s.short_id,
                    s.time[:19],
                    s.hostname,
                    s.profile or "(paths)",
                    "no" if s.partial else "yes",
                    s.summary.get("files", ""),
                    human_bytes(float(s.summary.get("bytes_total", 0) or 0)),
                    human_bytes(float(s.summary.get("added_bytes_new_stored", 0) or 0)),
                ]
                for s in reversed(snaps)
            ],
        ),
        "<h2>Repository size and data added per backup</h2>",
        _svg_plot(
            "Data stored by the backups (cumulative)",
            [Series("stored", growth, "s1")],
            fmt=human_bytes,
        ),
        _svg_plot("Data added per backup", [Series("added", added, "s2")], fmt=human_bytes, bars=True),
        _table(
            ["time", "added", "cumulative"],
            [
                [
                    dt.datetime.fromtimestamp(a[0], dt.UTC).isoformat(timespec="minutes"),
                    human_bytes(a[1]),
                    human_bytes(g[1]),
                ]
                for a, g in zip(added, growth, strict=True)
            ],
        ),
        "<h2>Backup and drill durations against the RTO</h2>",
        _svg_plot(
            "Duration (seconds)",
            [Series("backup", durations, "s1"), Series("drill", drill_pts, "s3")],
            fmt=human_duration,
            line=(f"RTO {human_duration(rto)}", rto) if rto else None,
        ),
        _table(
            ["drill", "snapshot", "result", "duration", "failed components"],
            [
                [
                    d.time[:19],
                    (d.snapshot_id or "")[:8],
                    "passed" if d.ok else "FAILED",
                    human_duration(d.seconds),
                    ", ".join(x.name for x in d.steps if not x.ok),
                ]
                for d in reversed(drills)
            ],
        ),
        "<h2>Snapshot age against the RPO</h2>",
        _svg_plot(
            "Hours since the previous complete snapshot (last point: now)",
            age_series,
            fmt=lambda v: f"{v:.1f} h",
            line=rpo_line,
        ),
        _table(["profile", "time", "age (hours)"], age_rows),
        "<h2>Last check</h2>",
        f'<p class="{"ok" if check and check["ok"] else "bad" if check else "empty"}">'
        + (
            _e(f"{check['time'][:19]}: {'passed' if check['ok'] else 'FAILED'} — {check['message']}")
            if check
            else "No check recorded yet ('safehold check')."
        )
        + "</p>",
        f'<script type="application/json" id="safehold-status">{_json_for_html(st.as_dict())}</script>',
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts), st


def _json_for_html(doc: Any) -> str:
    """JSON that cannot end its <script> element (``</`` and ``<!--`` escaped)."""
    return (
        json.dumps(doc, sort_keys=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


__all__ = ["render_report"]
