"""``safehold status`` end to end: exit 0 when the objectives are met, 5 when one is breached; checks are
recorded and shown; the Prometheus textfile is rewritten."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from tests.e2e.conftest import Cli


def test_status_exit_codes_and_textfile(tmp_path: Path, cli: Cli) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("hello " * 1000)
    prom = tmp_path / "prom" / "safehold.prom"
    prom.parent.mkdir()
    conf = tmp_path / "safehold.toml"
    base = f'version = 1\n[repository]\nurl = "{tmp_path}/repo"\n[status]\nprometheus_textfile = "{prom}"\n'
    conf.write_text(base + '[objectives]\nrpo = "24h"\n')
    assert cli("--config", str(conf), "init").code == 0
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)).isoformat(timespec="seconds")
    assert cli("--config", str(conf), "backup", str(data), "--time", old).code == 0

    r = cli("--config", str(conf), "status")
    assert r.code == 5, r
    assert "BREACHED rpo" in r.out and "beyond the RPO of 1d 0h" in r.out
    assert "error: objective(s) not met: rpo" in r.err
    assert 'safehold_objective_met{objective="rpo",host="' + socket.gethostname() in prom.read_text()

    assert cli("--config", str(conf), "backup", str(data)).code == 0
    r = cli("--config", str(conf), "--json", "status")
    assert r.code == 0, r
    doc = r.json()
    assert doc["ok"] is True and [o["name"] for o in doc["objectives"]] == ["rpo"]
    assert doc["repository"]["snapshots"] == 2 and doc["repository"]["dedup_ratio"] > 1
    assert doc["last_check"] is None

    # a check is recorded in the repository and shown; its failure would breach
    assert cli("--config", str(conf), "check").code == 0
    r = cli("--config", str(conf), "--json", "status")
    assert (
        r.json()["last_check"]["ok"] is True and r.json()["last_check"]["message"] == "structure: no errors"
    )
    assert "safehold_check_last_success 1" in prom.read_text()

    # an RTO without any drill: unproven, so breached
    conf.write_text(base + '[objectives]\nrpo = "24h"\nrto = "1h"\n')
    r = cli("--config", str(conf), "status")
    assert r.code == 5 and "no drill recorded" in r.out, r
    # another host's objectives are not this host's
    r = cli("--config", str(conf), "status", "--host", "elsewhere")
    assert r.code == 5 and "elsewhere" in r.out and "no complete snapshot" in r.out


def test_status_without_objectives_reports_figures(tmp_path: Path, cli: Cli) -> None:
    conf = tmp_path / "safehold.toml"
    conf.write_text(f'version = 1\n[repository]\nurl = "{tmp_path}/repo"\n')
    assert cli("--config", str(conf), "init").code == 0
    r = cli("--config", str(conf), "status")
    assert r.code == 0 and "none configured" in r.out and "0 snapshots" in r.out, r
