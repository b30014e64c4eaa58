"""The HTML report in a real headless Chromium (Debian's package, installed here when missing): it loads
without console errors, its script runs, a screenshot is taken, the plotted numbers are those of
``status``; hostile host names stay text; nothing is fetched from elsewhere."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from safehold.engine.format.repository import Repository
from safehold.operations.observe.report import render_report
from safehold.operations.observe.status import compute_status
from tests.e2e.conftest import Cli
from tests.status.test_status import NOW, check, config, drill, repo, snap  # noqa: F401 - fixture


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True, env=env, capture_output=True)  # fmt: skip
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and cannot be installed here (not root)")
    return found


def browse(chromium: str, page: Path, tmp: Path) -> tuple[str, str, Path]:
    """(the DOM after scripts ran, the browser's log, a screenshot)."""
    shot = tmp / (page.stem + ".png")
    args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--window-size=1000,2600"]  # fmt: skip
    dom = subprocess.run(
        [*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    subprocess.run(
        [*args, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True
    )
    return dom.stdout, dom.stderr, shot


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


class Marks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[dict[str, str]] = []
        self.lines: list[dict[str, str]] = []
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "mark" in a.get("class", "").split():
            self.marks.append(a)
        if a.get("class") == "objective":
            self.lines.append(a)
        if tag == "body":
            self.body = a


def test_the_console_check_can_fail(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    _dom, log, _shot = browse(chromium, bad, tmp_path)
    assert any("notDefined" in e for e in console_errors(log))


def test_report_in_chromium_matches_status(chromium: str, repo: Repository, tmp_path: Path) -> None:  # noqa: F811
    for hours in (24 * 9, 24 * 6, 24 * 3, 30):
        snap(repo, hours, added=50_000 * hours)
    snap(repo, 20, partial=True)
    snap(repo, 5, host="<img src=x onerror=alert(1)>", profile="quick")  # another host's name: text only
    drill(repo, 10, seconds=900)
    drill(repo, 3, seconds=1200)
    check(repo, 1)
    cfg = config()
    page, st = render_report(repo, cfg, ["web1"], now=NOW)
    assert st.as_dict() == compute_status(repo, cfg, now=NOW, hosts=["web1"]).as_dict()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), (
        "the page loads something from elsewhere"
    )
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    path = tmp_path / "report.html"
    path.write_text(page)

    dom, log, shot = browse(chromium, path, tmp_path)
    assert console_errors(log) == []
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parsed = Marks()
    parsed.feed(dom)
    assert parsed.body.get("data-ready") == "1", "the page's script did not run"
    assert parsed.body["data-marks"] == str(len(parsed.marks))
    status: dict[str, Any] = json.loads(json.dumps(st.as_dict()))
    assert parsed.body["data-breached"] == str(sum(not o["ok"] for o in status["objectives"]))

    def values(series: str) -> list[float]:
        return [float(m["data-value"]) for m in parsed.marks if m["data-series"] == series]

    # drills against the RTO: each recorded drill's duration, and the RTO line, as status has them
    (d,) = status["drills"]
    assert values("drill") == [900.0, 1200.0] and values("drill")[-1] == d["last"]["seconds"]
    rto_line, rpo_line = (float(x["data-value"]) for x in parsed.lines)
    assert rto_line == d["rto_seconds"] == 3600
    # snapshot age against the RPO: the last point is the newest complete snapshot's age now
    (p,) = [p for p in status["profiles"] if p["host"] == "web1"]
    ages = values("web1/quick")
    assert ages[-1] == pytest.approx(p["newest_complete"]["age_seconds"] / 3600)
    assert rpo_line == p["rpo_seconds"] / 3600 == 24
    assert ages[:3] == [72.0, 72.0, 42.0]  # gaps between complete snapshots, in hours
    # data added per backup: the snapshots' own figures
    recorded = [float(50_000 * h) for h in (24 * 9, 24 * 6, 24 * 3, 30)] + [100.0, 100.0]
    assert sorted(values("added")) == sorted(recorded)
    assert values("stored")[-1] == sum(values("added"))


def test_report_command(tmp_path: Path, cli: Cli, chromium: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("x" * 5000)
    conf = tmp_path / "safehold.toml"
    conf.write_text(f'version = 1\n[repository]\nurl = "{tmp_path}/repo"\n[objectives]\nrpo = "24h"\n')
    assert cli("--config", str(conf), "init").code == 0
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)).isoformat(timespec="seconds")
    assert cli("--config", str(conf), "backup", str(data), "--time", earlier).code == 0
    assert cli("--config", str(conf), "backup", str(data)).code == 0
    out = tmp_path / "r.html"
    r = cli("--config", str(conf), "--json", "report", "--html", str(out))
    assert r.code == 0 and r.json()["objectives_breached"] == 0, r
    dom, log, _shot = browse(chromium, out, tmp_path)
    assert console_errors(log) == [] and 'data-ready="1"' in dom
    embedded = json.loads(
        re.search(
            r'<script type="application/json" id="safehold-status">(.*?)</script>', out.read_text()
        ).group(1)
    )  # type: ignore[union-attr]
    status = cli("--config", str(conf), "--json", "status").json()
    assert [(o["name"], o["ok"]) for o in embedded["objectives"]] == [
        (o["name"], o["ok"]) for o in status["objectives"]
    ]
    assert embedded["repository"]["snapshots"] == status["repository"]["snapshots"] == 2
    assert cli("--config", str(conf), "report", "--html", str(tmp_path / "r.txt")).code == 2


def test_report_without_a_file_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    r = cli("--repo", str(tmp_path / "nothing"), "report")
    assert r.code == 2 and "--html FILE" in r.err, r
