"""Scheduled jobs: which ones the configuration asks for, and the systemd units or cron lines that run them.

Glossary:

* **Job** — one scheduled safehold command with its calendar: ``backup-<profile>`` (each profile of
  ``[schedule] backups``; ``backup`` for the whole configuration when there are no profiles), ``check``
  (``check --read-data-subset``), ``drill`` (``drill.schedule``) and ``prune`` (``forget --prune``, only
  when some profile has a retention). :func:`plan_jobs` derives them from the configuration.
* **Invocation** — how a job starts safehold: the program, ``--config`` (the file the schedule was
  installed from), where the passphrase comes from when the configuration does not say, and
  ``--lock-wait``.
* **Rendering** — :func:`render_systemd` writes a ``safehold-<job>.service`` (``Type=oneshot``, ``Nice``,
  ``IOSchedulingClass=idle``, ``SAFEHOLD_JOB=<job>``) and a ``.timer`` (``OnCalendar``,
  ``Persistent=true``, ``RandomizedDelaySec``) per job; :func:`render_cron` one ``/etc/cron.d/safehold``
  file (``nice``/``ionice``, ``SAFEHOLD_JOB`` and ``SAFEHOLD_JOB_DELAY`` for the random delay).

Every value that goes into a unit or a line passes :mod:`safehold.syntax`: job names must be valid unit
names (they come from profile names), arguments are quoted for ``ExecStart=`` (``%`` and ``$`` doubled)
or for ``/bin/sh`` under cron (``%`` escaped), and a control character anywhere is refused.

With ``SAFEHOLD_JOB`` set, the CLI waits the random delay (cron only) and takes the host's job lock, so
jobs never overlap (:mod:`safehold.cli.jobs`); notifications and the audit record (with its ``job``) are
safehold's own, as for any command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from safehold.config.calendar import OFF, Calendar, parse_calendar
from safehold.config.duration import parse_duration
from safehold.config.schema import Config
from safehold.errors import ConfigError, UnsafeValue
from safehold.operations.observe.audit import JOB_ENV
from safehold.syntax import cron_arg, systemd_exec_arg

UNIT_DIR = "etc/systemd/system"
CRON_FILE = "etc/cron.d/safehold"
UNIT_PREFIX = "safehold-"
DELAY_ENV = "SAFEHOLD_JOB_DELAY"
#: A job name becomes a unit name, an environment value and an audit field: a conservative subset of all.
_JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
HEADER = (
    "# Written by 'safehold schedule install'; 'safehold schedule remove' removes it.\n"
    "# Do not edit: change [schedule] in the configuration and run 'safehold schedule install' again.\n"
)


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    calendar: Calendar
    #: safehold's arguments after the global options: ("backup", "--profile", "quick")
    args: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "calendar": self.calendar.systemd(), "args": list(self.args)}


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    #: jobs the configuration turns off or cannot have, and why
    notes: list[str] = field(default_factory=list)


def job_name(name: str) -> str:
    """``name`` when it can be a unit name, environment value and file name; else UnsafeValue."""
    if not _JOB_NAME.match(name):
        raise UnsafeValue(
            f"the scheduled job name {name!r} cannot become a systemd unit name or a cron line",
            hint="Profile names use lowercase letters, digits, '-' and '_' (at most 64).",
        )
    return name


def _calendar(text: str, where: str) -> Calendar:
    try:
        return parse_calendar(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def plan_jobs(config: Config) -> Plan:
    """The jobs ``config`` asks for, in a stable order (backups by profile, check, drill, prune)."""
    s = config.schedule
    plan = Plan()

    def add(name: str, description: str, when: str, where: str, args: tuple[str, ...]) -> None:
        if when == OFF:
            plan.notes.append(f"{name}: off ({where} = 'off')")
            return
        plan.jobs.append(Job(job_name(name), description, _calendar(when, where), args))

    backups = s.backups
    if backups is None:
        default = config.defaults.profile
        backups = {default: "daily"} if default else {"": "daily"}
    for profile, when in sorted(backups.items()):
        if profile:
            add(f"backup-{profile}", f"back up profile {profile}", when, f"schedule.backups.{profile}",
                ("backup", "--profile", profile))  # fmt: skip
        else:
            add("backup", "back up every component", when, "schedule.backups", ("backup",))
    add("check", f"check the repository, reading {s.check_read_data_subset} of the data", s.check,
        "schedule.check", ("check", "--read-data-subset", s.check_read_data_subset))  # fmt: skip
    add("drill", "restore drill", config.drill.schedule, "drill.schedule", ("drill",))
    if any(p.retention is not None for p in config.profiles.values()):
        add("prune", "forget by retention and prune", s.prune, "schedule.prune", ("forget", "--prune"))
    else:
        plan.notes.append("prune: no job, since no profile has a retention (nothing to forget)")
    return plan


@dataclass(frozen=True)
class Invocation:
    """How a job starts safehold: ``program`` (an absolute path, or a Python and ``-m safehold``) and
    the global options every job passes (``--config``, perhaps ``--password-file``, ``--lock-wait``)."""

    program: tuple[str, ...]
    options: tuple[str, ...]

    def argv(self, job: Job, *, quiet: bool = False) -> list[str]:
        return [*self.program, *self.options, *(["-q"] if quiet else []), *job.args]

    def as_dict(self) -> dict[str, list[str]]:
        return {"program": list(self.program), "options": list(self.options)}


def _what(job: Job) -> str:
    return f"the command of scheduled job {job.name}"


def unit_names(job: Job) -> tuple[str, str]:
    return f"{UNIT_PREFIX}{job.name}.service", f"{UNIT_PREFIX}{job.name}.timer"


def render_systemd(jobs: list[Job], inv: Invocation, *, nice: int, delay: str) -> dict[str, str]:
    """Unit files by path relative to the root: a service and a timer per job."""
    out: dict[str, str] = {}
    delay_s = int(parse_duration(delay).total_seconds())
    for job in jobs:
        service, timer = unit_names(job)
        about = f"{job.description} ({job.calendar.text})".replace("%", "%%")  # specifiers: %n, %h...
        exec_start = " ".join(systemd_exec_arg(a, what=_what(job)) for a in inv.argv(job))
        out[f"{UNIT_DIR}/{service}"] = (
            f"{HEADER}[Unit]\nDescription=safehold: {about}\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Service]\nType=oneshot\nEnvironment={JOB_ENV}={job.name}\nExecStart={exec_start}\n"
            f"Nice={nice}\nIOSchedulingClass=idle\nCPUSchedulingPolicy=batch\n"
        )
        out[f"{UNIT_DIR}/{timer}"] = (
            f"{HEADER}[Unit]\nDescription=safehold: {about}\n\n"
            f"[Timer]\nOnCalendar={job.calendar.systemd()}\nPersistent=true\n"
            f"RandomizedDelaySec={delay_s}\nUnit={service}\n\n"
            "[Install]\nWantedBy=timers.target\n"
        )
    return out


@dataclass(frozen=True)
class CronTools:
    """Absolute paths of the programs a cron line wraps the job in (None: not installed)."""

    nice: str | None
    ionice: str | None


def render_cron(
    jobs: list[Job], inv: Invocation, *, nice: int, delay: str, tools: CronTools
) -> dict[str, str]:
    """The one cron.d file, by its path relative to the root. Raises ConfigError for a calendar cron
    cannot express."""
    delay_s = int(parse_duration(delay).total_seconds())
    lines = [HEADER.rstrip("\n"), "SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ""]  # fmt: skip
    for job in jobs:
        try:
            when = job.calendar.cron()
        except ValueError as exc:
            raise ConfigError(
                f"scheduled job {job.name}: {exc}",
                hint="Give it a calendar cron can express, or install systemd timers (--systemd).",
            ) from None
        wrap: list[str] = []
        if tools.nice:
            wrap += [tools.nice, "-n", str(nice)]
        if tools.ionice:
            wrap += [tools.ionice, "-c", "3"]
        words = [*wrap, *inv.argv(job, quiet=True)]
        command = " ".join(cron_arg(w, what=_what(job)) for w in words)
        lines += [
            f"# {job.name}: {job.description} ({job.calendar.text})",
            f"{when} root {JOB_ENV}={job.name} {DELAY_ENV}={delay_s} {command}",
        ]
    return {CRON_FILE: "\n".join(lines) + "\n"}
