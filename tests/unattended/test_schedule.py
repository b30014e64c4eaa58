"""'safehold schedule': units and cron lines written below a temporary root (never this machine's /etc),
validated (systemd-analyze verify, plus a strict parser of every line), shown with their next and last
runs, removed to the last file; hostile names and paths are refused or escaped; jobs never overlap;
doctor compares what is installed with the configuration."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from safehold.config.calendar import parse_calendar
from safehold.config.loader import load_config
from safehold.config.schema import Config
from safehold.errors import UnsafeValue
from safehold.operations.observe import audit
from safehold.operations.schedule.install import MANIFEST, check_installed, read_manifest
from safehold.operations.schedule.jobs import Job, job_name, plan_jobs

PASS = "schedule passphrase 5d21"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _config(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    app = folder / "app"
    app.mkdir(exist_ok=True)
    cfg = folder / "safehold.toml"
    cfg.write_text(f"""
[repository]
url = {json.dumps(str(folder / "repo"))}
password = {{ env = "SCHED_PASS" }}

[components.app]
kind = "files"
paths = [{json.dumps(str(app))}]

[profiles.quick]
components = ["app"]
retention = {{ daily = 7 }}

[profiles.full]
components = ["app"]

[defaults]
profile = "quick"
{extra}""")
    return cfg


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "SCHED_PASS": PASS,
        "SAFEHOLD_REPOSITORY": "",
        audit.AUDIT_ENV: str(tmp_path / "audit.jsonl"),
        "SAFEHOLD_JOB_LOCK": str(tmp_path / "jobs.lock"),
    }


# ------------------------------------------------------------------------------------------ parsers
def unit_file(text: str) -> dict[str, dict[str, str]]:
    """A strict reading of a generated unit: comments, blank lines, [Section] and Key=Value only, each key
    once, no line continuation."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert not line.endswith("\\"), line
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, eq, value = line.partition("=")
        assert eq and key.isalnum() and current is not None and key not in current, line
        current[key] = value
    return sections


def exec_start(line: str) -> list[str]:
    """ExecStart= words as systemd reads them, strictly: every word double-quoted, only \\\\ and \\"
    escapes inside, every % and $ doubled."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        assert line[i] == '"', line[i:]
        i += 1
        word = ""
        while line[i] != '"':
            ch = line[i]
            if ch == "\\":
                assert line[i + 1] in '\\"', line[i:]
                word, i = word + line[i + 1], i + 2
            elif ch in "%$":
                assert line[i + 1] == ch, f"lone {ch} in {line!r}"
                word, i = word + ch, i + 2
            else:
                word, i = word + ch, i + 1
        words.append(word)
        i += 1
    return words


def cron_line(line: str) -> tuple[str, list[str], list[str]]:
    """(time fields, environment assignments, command argv) of a cron.d line, as cron and /bin/sh read
    it: an unescaped % would end the command, so there must be none."""
    fields = line.split(None, 6)
    assert fields[5] == "root"
    command = fields[6]
    assert "%" not in command.replace("\\%", ""), command
    words = shlex.split(command.replace("\\%", "%"))
    env = [w for w in words[:2] if "=" in w]
    return " ".join(fields[:5]), env, words[len(env) :]


# ------------------------------------------------------------------------------------------ calendar
EXPRESSIONS = ["daily", "weekly", "monthly", "hourly", "quarterly", "yearly", "Mon..Fri 03:30",
               "Sat,Sun 2/6:15", "*-*-1/10 00:10", "12-25", "04:00", "*-02-29 01:00",
               "Mon,Wed..Fri *-1..6-* 23:59:00", "Sun *-*-01..07 04:00"]  # fmt: skip


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("text", EXPRESSIONS)
def test_next_runs_are_systemds(text: str) -> None:
    cal = parse_calendar(text)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    ours, t = [], now
    for _ in range(4):
        nxt = cal.next_after(t)
        assert nxt is not None
        ours.append(nxt.strftime("%a %Y-%m-%d %H:%M:%S UTC"))
        t = nxt
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations=4", cal.systemd()],
        capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"},
    ).stdout  # fmt: skip
    theirs = [
        line.split(": ", 1)[1].strip()
        for line in out.splitlines()
        if "Next elapse" in line or "Iter." in line
    ]
    assert ours == theirs


def test_calendar_cron_fields_and_refusals() -> None:
    assert parse_calendar("daily").cron() == "0 0 * * *"
    assert parse_calendar("Mon..Fri 03:30").cron() == "30 3 * * 1,2,3,4,5"
    assert parse_calendar("Sat,Sun 2/6:15").cron() == "15 2,8,14,20 * * 6,0"
    assert parse_calendar("*-1..6-01 23:59").cron() == "59 23 1 1-6 *"
    with pytest.raises(ValueError, match="cron cannot express"):
        parse_calendar("Sun *-*-01..07 04:00").cron()
    for bad in ["", "soon", "2027-01-01", "*:*:30", "daily\nOnCalendar=minutely", "Mon..Sun..Fri", "25:00",
                "*-*-* 03:00 UTC", "*-*-*/2", "%n", "*-*-~1"]:  # fmt: skip
        with pytest.raises(ValueError):
            parse_calendar(bad)


# ------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["a b", "x\ny", "..", "%n", "a/b", "-x", "A", "é", "x" * 65, ""])
def test_hostile_job_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeValue):
        job_name(f"backup-{name}" if name and name[0] not in "-." else name)


def test_hostile_profile_names_never_reach_a_unit(tmp_path: Path) -> None:
    """The configuration refuses such profile names; a configuration built past its validation is
    refused again when the jobs are planned."""
    cfg = load_config(_config(tmp_path / "c"))
    for name in ["a b", "x\ny", "..", "%n", "../../etc/x"]:
        hostile = cfg.model_copy(deep=True)
        hostile.schedule.backups = {name: "daily"}
        with pytest.raises(UnsafeValue):
            plan_jobs(hostile)


def test_the_configuration_refuses_unknown_profiles_and_bad_calendars(tmp_path: Path, run, env) -> None:
    cfg = _config(
        tmp_path / "c", '[schedule]\nbackups = { nope = "daily", quick = "often" }\ncheck = "Mon 25:00"\n'
    )
    r = run("--config", str(cfg), "config", "check", env=env, password=None)
    assert r.code == 2
    assert "schedule.backups.nope" in r.err and "no profile named 'nope'" in r.err
    assert "schedule.backups.quick" in r.err and "schedule.check" in r.err


# ------------------------------------------------------------------------------------------ systemd
def test_systemd_units_are_written_verified_and_removed(tmp_path: Path, run, env) -> None:
    # a configuration path that holds what unit files and shells interpret: space, %, $, quotes, \
    cfg = _config(tmp_path / 'cfg dir %n %% $HOME ${X} "q" \\ \'s', "[schedule]\nbackups = { quick = \"Mon..Fri 03:30\", full = \"weekly\" }\ncheck_read_data_subset = \"10%\"\n")  # fmt: skip
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    mine = root / "etc" / "systemd" / "system" / "nginx.service"
    mine.write_text("[Service]\nExecStart=/usr/sbin/nginx\n")
    r = run("--config", str(cfg), "schedule", "install", "--root", str(root), "--systemd", "--json", env=env, password=None)  # fmt: skip
    assert r.code == 0, r.err
    result = r.json()
    assert [j["name"] for j in result["jobs"]] == ["backup-full", "backup-quick", "check", "drill", "prune"]
    units = root / "etc" / "systemd" / "system"
    names = sorted(p.name for p in units.glob("safehold-*"))
    assert len(names) == 10 and "safehold-backup-quick.timer" in names

    service = unit_file((units / "safehold-backup-quick.service").read_text())
    argv = exec_start(service["Service"]["ExecStart"])
    assert argv[1:] == ["--config", str(cfg), "--lock-wait", "6h", "backup", "--profile", "quick"]
    assert Path(argv[0]).name == "safehold" and os.access(argv[0], os.X_OK)
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["IOSchedulingClass"] == "idle"
    assert (
        service["Service"]["Nice"] == "10"
        and service["Service"]["Environment"] == "SAFEHOLD_JOB=backup-quick"
    )
    check = unit_file((units / "safehold-check.service").read_text())
    assert exec_start(check["Service"]["ExecStart"])[-3:] == ["check", "--read-data-subset", "10%"]
    assert "10%% of the data" in check["Unit"]["Description"]
    timer = unit_file((units / "safehold-backup-quick.timer").read_text())
    assert timer["Timer"] == {
        "OnCalendar": "Mon,Tue,Wed,Thu,Fri *-*-* 03:30:00",
        "Persistent": "true",
        "RandomizedDelaySec": "1800",
        "Unit": "safehold-backup-quick.service",
    }
    assert timer["Install"] == {"WantedBy": "timers.target"}
    assert unit_file((units / "safehold-prune.service").read_text())["Service"]["ExecStart"].endswith(
        '"forget" "--prune"'
    )
    if SYSTEMD_ANALYZE is not None:
        files = [str(p) for p in sorted(units.glob("safehold-*"))]
        v = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", "--man=no", *files], capture_output=True, text=True, check=False
        )
        assert v.returncode == 0, v.stderr
    if shutil.which("systemctl"):  # enabled offline, below the root only
        assert (units / "timers.target.wants" / "safehold-drill.timer").is_symlink()

    r = run("schedule", "remove", "--root", str(root), env=env, password=None)
    assert r.code == 0, r.err
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == ["etc", "etc/systemd", "etc/systemd/system", "etc/systemd/system/nginx.service"]
    assert mine.read_text() == "[Service]\nExecStart=/usr/sbin/nginx\n"


def test_a_path_with_a_line_break_is_refused(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "bad\nExecStartPre=/bin/sh")
    root = tmp_path / "root"
    root.mkdir()
    for mode in ("--systemd", "--cron"):
        r = run(
            "--config", str(cfg), "schedule", "install", "--root", str(root), mode, env=env, password=None
        )
        assert r.code == 2 and "line break" in r.err, r.err
    assert list(root.iterdir()) == []


# ------------------------------------------------------------------------------------------ cron
def test_cron_lines_are_written_and_removed(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "cfg 100% $(id)", '[schedule]\nbackups = { quick = "Mon..Fri 03:30", full = "Sun 02:00" }\nprune = "off"\n')  # fmt: skip
    root = tmp_path / "root"
    root.mkdir()
    r = run(
        "--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None
    )
    assert r.code == 0, r.err
    assert "prune: off" in r.out
    cron = root / "etc" / "cron.d" / "safehold"
    assert cron.stat().st_mode & 0o777 == 0o644
    lines = [
        ln
        for ln in cron.read_text().splitlines()
        if ln and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    parsed = {cron_line(ln)[1][0]: cron_line(ln) for ln in lines}
    assert set(parsed) == {"SAFEHOLD_JOB=backup-full", "SAFEHOLD_JOB=backup-quick", "SAFEHOLD_JOB=check", "SAFEHOLD_JOB=drill"}  # fmt: skip
    when, jenv, argv = parsed["SAFEHOLD_JOB=backup-quick"]
    assert when == "30 3 * * 1,2,3,4,5" and jenv[1] == "SAFEHOLD_JOB_DELAY=1800"
    assert argv[argv.index("--config") :] == ["--config", str(cfg), "--lock-wait", "6h", "-q", "backup", "--profile", "quick"]  # fmt: skip
    assert parsed["SAFEHOLD_JOB=check"][2][-3:] == ["check", "--read-data-subset", "5%"]
    assert parsed["SAFEHOLD_JOB=backup-full"][0] == "0 2 * * 0"

    r = run("schedule", "remove", "--root", str(root), env=env, password=None)
    assert r.code == 0 and list(root.iterdir()) == []


def test_cron_refuses_a_calendar_it_cannot_express(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "c", '[drill]\nschedule = "Sun *-*-01..07 04:00"\n')
    root = tmp_path / "root"
    root.mkdir()
    r = run(
        "--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None
    )
    assert r.code == 2 and "scheduled job drill" in r.err and "--systemd" in r.err
    assert list(root.iterdir()) == []


# ------------------------------------------------------------------------------------------ manifest
def test_remove_keeps_changed_files_and_install_keeps_foreign_ones(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "c")
    root = tmp_path / "root"
    (root / "etc" / "cron.d").mkdir(parents=True)
    foreign = root / "etc" / "cron.d" / "safehold"
    foreign.write_text("0 1 * * * root /usr/local/bin/my-own-backup\n")
    r = run(
        "--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None
    )
    assert r.code == 1 and "was not written by safehold" in r.err
    assert foreign.read_text() == "0 1 * * * root /usr/local/bin/my-own-backup\n"
    foreign.unlink()

    assert run("--config", str(cfg), "schedule", "install", "--root", str(root), "--systemd", env=env, password=None).code == 0  # fmt: skip
    edited = root / "etc" / "systemd" / "system" / "safehold-drill.timer"
    edited.write_text(edited.read_text().replace("Persistent=true", "Persistent=false"))
    r = run("--config", str(cfg), "schedule", "install", "--root", str(root), env=env, password=None)
    assert r.code == 1 and "changed since" in r.err
    r = run("schedule", "remove", "--root", str(root), env=env, password=None)
    assert r.code == 1 and "safehold-drill.timer" in r.out
    assert edited.exists() and not (root / "etc" / "systemd" / "system" / "safehold-drill.service").exists()
    assert not (root / MANIFEST).exists()


def test_a_tampered_manifest_removes_nothing(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "c")
    root = tmp_path / "root"
    root.mkdir()
    assert run("--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None).code == 0  # fmt: skip
    victim = root / "etc" / "passwd"
    victim.write_text("root:x:0:0\n")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["files"]["etc/cron.d/../passwd"] = manifest["files"]["etc/cron.d/safehold"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    r = run("schedule", "remove", "--root", str(root), env=env, password=None)
    assert r.code == 1 and "names files safehold never writes" in r.err
    assert victim.exists() and (root / "etc" / "cron.d" / "safehold").exists()


# ------------------------------------------------------------------------------------------ status
def test_status_shows_next_runs_and_the_last_run_from_the_audit_log(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "c")
    root = tmp_path / "root"
    root.mkdir()
    r = run("--config", str(cfg), "schedule", "status", "--root", str(root), "--json", env=env, password=None)
    assert r.code == 0 and r.json()["installed"] is False
    assert [j["name"] for j in r.json()["planned"]] == ["backup-quick", "check", "drill", "prune"]

    assert run("--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None).code == 0  # fmt: skip
    log = Path(env[audit.AUDIT_ENV])
    audit.append_local(audit.Record("backup", ["backup"], "failed", 1, time="2026-11-30T00:10:00.000+00:00", job="backup-quick"), log)  # fmt: skip
    audit.append_local(audit.Record("backup", ["backup"], "ok", 0, time="2026-12-01T00:12:00.000+00:00", job="backup-quick", snapshot_ids=["ab" * 32]), log)  # fmt: skip
    audit.append_local(
        audit.Record("backup", ["backup"], "ok", 0, time="2026-12-01T09:00:00.000+00:00"), log
    )  # by hand
    audit.append_local(audit.Record("check", ["check"], "failed", 1, time="2026-11-30T00:20:00.000+00:00", job="check", error="pack 3f damaged"), log)  # fmt: skip

    r = run("--config", str(cfg), "schedule", "status", "--root", str(root), "--json", env=env, password=None)
    # the check job's last run failed: a monitor running 'schedule status' sees it in the exit code
    assert r.code == 1, r.err
    assert "did not succeed: check (failed, exit 1)" in r.err and "hint: " in r.err, r.err
    jobs = {j["name"]: j for j in r.json()["jobs"]}
    quick = jobs["backup-quick"]
    assert quick["last"]["time"] == "2026-12-01T00:12:00.000+00:00" and quick["last"]["result"] == "ok"
    assert quick["last"]["snapshot_ids"] == ["ab" * 32] and quick["next_from"] == "calendar"
    nxt = dt.datetime.fromisoformat(quick["next_run"])
    assert nxt > dt.datetime.now().astimezone() and (nxt.hour, nxt.minute) == (0, 0)
    assert jobs["check"]["last"]["error"] == "pack 3f damaged"
    assert dt.datetime.fromisoformat(jobs["drill"]["next_run"]).day == 1 and jobs["drill"]["last"] is None
    text = run("schedule", "status", "--root", str(root), env=env, password=None).out
    assert "ok (exit 0) snapshot abababab" in text and "never (no audit record" in text
    audit.append_local(audit.Record("check", ["check"], "ok", 0, time="2026-12-01T00:20:00.000+00:00", job="check"), log)  # fmt: skip
    r = run("schedule", "status", "--root", str(root), env=env, password=None)
    assert r.code == 0 and "error" not in r.err, r.err  # the newest run of every job succeeded


# ------------------------------------------------------------------------------------------ jobs
def test_jobs_never_overlap_and_a_job_that_cannot_start_says_why(tmp_path: Path, run, env) -> None:
    lock = Path(env["SAFEHOLD_JOB_LOCK"])
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"backup-full (pid 4242)\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    job = env | {"SAFEHOLD_JOB": "check"}
    try:
        r = run("--lock-wait", "2s", "config", "sample", env=job, password=None)
        assert r.code == 1 and "scheduled job check did not start" in r.err
        assert "backup-full (pid 4242)" in r.err
        assert run("config", "sample", env=env, password=None).code == 0  # not a job: no job lock
    finally:
        os.close(fd)
    r = run("--lock-wait", "2s", "config", "sample", env=job, password=None)
    assert r.code == 0, r.err
    records = audit.read_local(Path(env[audit.AUDIT_ENV]))
    assert [(x["job"], x["exit_code"]) for x in records] == [("check", 1), (None, 0), ("check", 0)]


# ------------------------------------------------------------------------------------------ doctor
def _schedule_finding(config: Config, root: Path, cfg: Path) -> tuple[bool, str, list[str]]:
    ok, message, _hint, lines = check_installed(root, config, cfg)
    return ok, message, lines


def test_doctor_checks_the_installed_schedule_against_the_configuration(tmp_path: Path, run, env) -> None:
    root = tmp_path / "root"
    root.mkdir()
    cfg = _config(tmp_path / "c", '[schedule]\nbackups = { quick = "daily" }\n')
    ok, message, _ = _schedule_finding(load_config(cfg), root, cfg)
    assert not ok and "no schedule installed although the configuration has [schedule]" in message
    plain = _config(tmp_path / "p")
    assert _schedule_finding(load_config(plain), root, plain)[0]  # no [schedule]: a note, not a problem

    assert run("--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password=None).code == 0  # fmt: skip
    ok, message, _ = _schedule_finding(load_config(cfg), root, cfg)
    assert ok and "backup-quick (*-*-* 00:00:00)" in message
    cfg.write_text(cfg.read_text().replace('quick = "daily"', 'quick = "02:00", full = "weekly"'))
    ok, message, lines = _schedule_finding(load_config(cfg), root, cfg)
    assert not ok and "does not match the configuration" in message
    assert "missing: backup-full (Mon *-*-* 00:00:00)" in lines
    assert any(line.startswith("differs: backup-quick: installed *-*-* 00:00:00") for line in lines)


def test_install_needs_a_passphrase_the_jobs_can_read(tmp_path: Path, run, env) -> None:
    cfg = _config(tmp_path / "c")
    cfg.write_text(cfg.read_text().replace('password = { env = "SCHED_PASS" }\n', ""))
    root = tmp_path / "root"
    root.mkdir()
    r = run("--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=env, password="a secret value")  # fmt: skip
    assert r.code == 2 and "no passphrase" in r.err and list(root.iterdir()) == []
    pw = tmp_path / "pass"
    pw.write_text("x\n")
    e = env | {"SAFEHOLD_PASSWORD_FILE": str(pw)}
    assert run("--config", str(cfg), "schedule", "install", "--root", str(root), "--cron", env=e, password=None).code == 0  # fmt: skip
    text = (root / "etc" / "cron.d" / "safehold").read_text()
    assert f"--password-file {pw}" in text and "a secret value" not in text
    assert read_manifest(root) is not None


def test_plan_defaults(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path / "c"))
    plan = plan_jobs(config)
    assert [(j.name, j.calendar.systemd(), j.args) for j in plan.jobs] == [
        ("backup-quick", "*-*-* 00:00:00", ("backup", "--profile", "quick")),
        ("check", "Mon *-*-* 00:00:00", ("check", "--read-data-subset", "5%")),
        ("drill", "*-*-01 00:00:00", ("drill",)),
        ("prune", "*-*-* 00:00:00", ("forget", "--prune")),
    ]
    assert isinstance(plan.jobs[0], Job)
