"""The configuration's tables other than components: repositories, profiles, objectives, notifications,
drills and hooks; health checks live in :mod:`safehold.config.healthchecks` (see
:mod:`safehold.config.schema` for the whole file)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from safehold.config.calendar import check_calendar
from safehold.config.defaults import PREFLIGHT
from safehold.config.validation import Duration, absolute_path
from safehold.config.validation import StrictModel as _Model
from safehold.secrets import SecretRef

_SECRETISH_OPTION = re.compile(r"(password|passphrase|secret|token)", re.I)
#: A calendar expression (see :mod:`safehold.config.calendar`) or "off".
Calendar = Annotated[str, AfterValidator(check_calendar)]


# ------------------------------------------------------------------------------------------ repository
class RepositorySettings(_Model):
    """Where snapshots are stored and how the repository is opened."""

    url: str = Field(
        min_length=1,
        description="Repository location: a local path, sftp://user@host//path, s3://bucket/prefix or gs://bucket/prefix.",
        examples=["/srv/backup/safehold", "sftp://backup@backup.example.com//srv/safehold"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Where the repository passphrase comes from; when absent, SAFEHOLD_PASSWORD, "
        "SAFEHOLD_PASSWORD_FILE, SAFEHOLD_PASSWORD_COMMAND or a prompt.",
        examples=[{"file": "/root/.safehold-pass"}],
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options passed to open_backend (connections, timeout, region, endpoint_url, "
        "storage_class, identity_file, ...). Credentials belong in the environment, not here.",
        examples=[{"connections": 4}],
    )

    @field_validator("options")
    @classmethod
    def _no_literal_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if _SECRETISH_OPTION.search(key) and isinstance(item, str):
                raise ValueError(
                    f"option {key!r} looks like a secret: pass credentials through the environment "
                    "(AWS_SECRET_ACCESS_KEY, an SSH key file), never in the configuration"
                )
        return value


class OffsiteSettings(RepositorySettings):
    """A second repository that snapshots are copied to after a successful backup."""

    url: str = Field(
        min_length=1,
        description="Off-site repository location: sftp://user@host//path, s3://bucket/prefix, gs://bucket/prefix or a path.",
        examples=["sftp://backup@backup.example.com//srv/safehold", "s3://company-backups/app"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Where this repository's passphrase comes from; when absent, the main repository's.",
        examples=[{"env": "OFFSITE_PASSWORD"}],
    )


# ------------------------------------------------------------------------------------------ profiles
class Retention(_Model):
    """Which snapshots 'forget' keeps: the newest of each period, the newest N, those within a time span
    or with a tag (restic's rules; see 'safehold forget --help'). Absent settings keep nothing by that rule;
    the newest complete snapshot and pinned snapshots are always kept."""

    last: int | None = Field(default=None, ge=0, description="Keep the newest N snapshots.", examples=[3])
    hourly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N hours.", examples=[24]
    )
    daily: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N days.", examples=[7]
    )
    weekly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N weeks.", examples=[4]
    )
    monthly: int | None = Field(
        default=None,
        ge=0,
        description="Keep the newest snapshot of each of the last N months.",
        examples=[12],
    )
    yearly: int | None = Field(
        default=None, ge=0, description="Keep the newest snapshot of each of the last N years.", examples=[3]
    )
    within: Duration | None = Field(
        default=None,
        description="Keep every snapshot taken less than this before the group's newest snapshot.",
        examples=["2d"],
    )
    within_hourly: Duration | None = Field(
        default=None,
        description="Keep the newest snapshot of each hour within this of the group's newest snapshot.",
        examples=["2d"],
    )
    within_daily: Duration | None = Field(
        default=None,
        description="Keep the newest snapshot of each day within this of the group's newest snapshot.",
        examples=["14d"],
    )
    within_weekly: Duration | None = Field(
        default=None,
        description="Keep the newest snapshot of each week within this of the group's newest snapshot.",
        examples=["8w"],
    )
    within_monthly: Duration | None = Field(
        default=None,
        description="Keep the newest snapshot of each month within this of the group's newest snapshot.",
        examples=["52w"],
    )
    within_yearly: Duration | None = Field(
        default=None,
        description="Keep the newest snapshot of each year within this of the group's newest snapshot.",
        examples=["520w"],
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Keep every snapshot with these tags (an entry 'a,b' means both a and b).",
        examples=[["keep"]],
    )


class Profile(_Model):
    """Components backed up together, with their tags, retention and off-site copies."""

    components: list[str] = Field(
        min_length=1,
        description="Names of the components in this profile (each must be defined under [components]).",
        examples=[["app", "database"]],
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Tags recorded on every snapshot of this profile.",
        examples=[["quick"]],
    )
    retention: Retention | None = Field(
        default=None,
        description="Which snapshots of this profile 'forget' keeps; absent means keep all.",
        examples=[{"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}],
    )
    offsite: list[str] = Field(
        default_factory=list,
        description="Off-site repositories (names under [offsite]) the snapshot is copied to after a "
        "successful backup.",
        examples=[["backupserver"]],
    )
    rpo: Duration | None = Field(
        default=None,
        description="How old this profile's newest complete snapshot may be ('status' measures it; default: "
        "objectives.rpo for the default profile, none for the others).",
        examples=["7d"],
    )


class Defaults(_Model):
    """What commands use when not told otherwise."""

    profile: str | None = Field(
        default=None,
        description="Profile 'safehold backup' runs without --profile (must be defined under [profiles]).",
        examples=["quick"],
    )
    safety_retention: Retention = Field(
        default_factory=lambda: Retention(within="30d"),
        description="Which safety snapshots (tag 'safety', taken before a restore replaces something) "
        "'forget' keeps; they never count against a profile's retention.",
        examples=[{"within": "30d", "last": 3}],
    )


class Objectives(_Model):
    """Recovery objectives that 'status' and 'drill' measure against."""

    rpo: Duration | None = Field(
        default=None,
        description="Recovery point objective: the newest complete snapshot of the default profile (of "
        "every profile when there is none) must be younger than this; a profile's own 'rpo' overrides it.",
        examples=["24h"],
    )
    rto: Duration | None = Field(
        default=None,
        description="Recovery time objective: the newest restore drill must have passed and finished "
        "within this.",
        examples=["1h"],
    )
    drill_age: Duration | None = Field(
        default=None,
        description="How old the newest drill may be before the RTO counts as unproven (default: from "
        "drill.schedule; 32 days for 'monthly').",
        examples=["35d"],
    )


class StatusSettings(_Model):
    """What 'status' publishes besides its output."""

    prometheus_textfile: Annotated[str, absolute_path(".prom")] | None = Field(
        default=None,
        description="A file (for node_exporter's textfile collector) rewritten with the figures of "
        "'status' after every backup, check, drill, forget, prune and status run, also a failed one "
        "(atomically, mode 0644).",
        examples=["/var/lib/prometheus/node-exporter/safehold.prom"],
    )


class PreflightSettings(_Model):
    """Checks before every backup: room on the repository, cache and temporary folders, and each
    component's own checks."""

    enabled: bool = Field(
        default=PREFLIGHT.enabled,
        description="Check before every backup; a backup that cannot fit stops before it writes anything "
        "(exit code 6).",
        examples=[True],
    )
    warn_usage: int = Field(
        default=PREFLIGHT.warn_usage,
        ge=1,
        le=100,
        description="Warn (and send disk.low) when a folder's file system would be fuller than this percent "
        "after the backup.",
        examples=[85],
    )
    margin: int = Field(
        default=PREFLIGHT.margin,
        ge=0,
        le=1000,
        description="Percent added to the estimated need (what the largest of the profile's last three "
        "backups added to the repository) before it is compared with the free space.",
        examples=[25],
    )
    components: bool = Field(
        default=PREFLIGHT.components,
        description="Also run each component's own checks (server reachable, tools present, credentials "
        "resolve), all at once; a problem is a warning, the backup goes on (that component fails in it).",
        examples=[True],
    )
    timeout: float = Field(
        default=PREFLIGHT.timeout,
        gt=0,
        le=600,
        description="Seconds the components' checks may take in all; those not done by then are reported "
        "as unfinished and the backup goes on.",
        examples=[10],
    )


class Drill(_Model):
    """Restore drills: restore into a sandbox, load dumps into scratch servers, verify, time it."""

    profile: str | None = Field(
        default=None,
        description="Profile whose newest snapshot is drilled (default: defaults.profile).",
        examples=["quick"],
    )
    schedule: Calendar = Field(
        default="monthly",
        description="When the drill that 'safehold schedule install' writes runs (a calendar expression "
        "as in [schedule], or 'off'); sets the default of objectives.drill_age.",
        examples=["monthly", "*-*-01 04:00"],
    )
    sandbox: str = Field(
        default="/var/tmp/safehold-drill",
        description="Folder below which each drill makes its own sandbox (drill-<id>), removed afterwards; "
        "a killed drill's sandbox and scratch databases are removed by the next drill or 'drill --cleanup'.",
        examples=["/var/tmp/safehold-drill"],
    )
    keep_sandbox: bool = Field(
        default=False,
        description="Keep the restored files and scratch databases after the drill for inspection.",
        examples=[False],
    )
    step_timeout: Duration = Field(
        default="6h",
        description="Longest a drill's step (one component's restore and proof, a health check) may take: "
        "a step still running then is stopped and fails the drill, saying so, and the next step runs "
        "(a server that never answers, a lock never released, a stuck program cannot hang a drill).",
        examples=["6h", "30m"],
    )
    mysql_scratch_host: str = Field(
        default="127.0.0.1",
        description="MySQL/MariaDB server that drill dumps are loaded into (into new scratch databases).",
        examples=["127.0.0.1"],
    )
    mysql_scratch_port: int = Field(
        default=3306, ge=1, le=65535, description="Port of the MySQL scratch server.", examples=[3306]
    )
    mysql_scratch_user: str = Field(
        default="root",
        description="User that may create and drop the scratch databases.",
        examples=["drill"],
    )
    mysql_scratch_password: SecretRef | None = Field(
        default=None,
        description="Where the scratch MySQL user's password comes from. None: the component's own password "
        "when scratch server and user are the component's (one account), else no password.",
        examples=[{"env": "DRILL_MYSQL_PASSWORD"}],
    )
    postgresql_scratch_host: str = Field(
        default="127.0.0.1",
        description="PostgreSQL server that drill dumps are loaded into.",
        examples=["127.0.0.1"],
    )
    postgresql_scratch_port: int = Field(
        default=5432, ge=1, le=65535, description="Port of the PostgreSQL scratch server.", examples=[5432]
    )
    postgresql_scratch_user: str = Field(
        default="postgres",
        description="Role that may create and drop the scratch databases.",
        examples=["postgres"],
    )
    postgresql_scratch_password: SecretRef | None = Field(
        default=None,
        description="Where the scratch PostgreSQL role's password comes from. None: the component's own "
        "password when scratch server and role are the component's (one account), else no password.",
        examples=[{"env": "DRILL_PGPASSWORD"}],
    )

    def scratch(self, kind: str) -> dict[str, Any]:
        """The scratch server a drill loads ``kind``'s dumps into (host, port, user, password reference;
        None for no password), empty for kinds that load into nothing of the kind's own."""
        if kind not in ("mysql", "postgresql"):
            return {}
        pw = getattr(self, f"{kind}_scratch_password")
        return {
            "host": getattr(self, f"{kind}_scratch_host"),
            "port": getattr(self, f"{kind}_scratch_port"),
            "user": getattr(self, f"{kind}_scratch_user"),
            "password": pw.model_dump(exclude_none=True) if pw is not None else None,
        }


class Schedule(_Model):
    """When the jobs 'safehold schedule install' writes run (systemd timers, or cron lines): calendar
    expressions in systemd's OnCalendar form, limited to what cron can express too (a keyword such as
    daily, weekly, monthly, or [WEEKDAYS] [*-MONTH-DAY] [HOUR:MINUTE], e.g. 'Mon..Fri 03:00'), or 'off'.
    The drill's calendar is drill.schedule."""

    backups: dict[str, Calendar] | None = Field(
        default=None,
        description="Profile -> when its backup runs. Absent: the default profile (defaults.profile; "
        "every component when there is none) daily.",
        examples=[{"quick": "daily", "full": "Sun 02:30", "external": "daily"}],
    )
    check: Calendar = Field(
        default="weekly",
        description="When 'safehold check --read-data-subset' runs ('off': never).",
        examples=["Sat 05:00"],
    )
    check_read_data_subset: str = Field(
        default="5%",
        pattern=r"^(100|[1-9]?[0-9](\.[0-9]+)?)%$",
        description="Share of the packs each scheduled check reads and verifies (a different random "
        "part each time).",
        examples=["10%"],
    )
    prune: Calendar = Field(
        default="daily",
        description="When 'safehold forget --prune' applies each profile's retention and frees space "
        "('off': never; no job either when no profile has a retention).",
        examples=["*-*-* 05:30"],
    )
    randomized_delay: Duration = Field(
        default="30m",
        description="Each run starts up to this much later than its calendar says, at random, so that "
        "hosts sharing a repository or a network do not all start at once.",
        examples=["1h"],
    )
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of the jobs (their disk I/O always runs in the idle class).",
        examples=[10],
    )
    lock_wait: Duration = Field(
        default="6h",
        description="How long a job waits for another scheduled job of this host (they never overlap) "
        "and for a conflicting repository lock, before it fails and says so.",
        examples=["6h"],
    )


class Hook(_Model):
    """A program run before or after a backup (maintenance mode, pausing queue workers, ...)."""

    command: list[str] = Field(
        min_length=1,
        description="The program and its arguments (argv; no shell).",
        examples=[["php", "/var/www/app/artisan", "down"]],
    )
    on_failure: Literal["abort", "continue"] = Field(
        default="abort",
        description="When the program fails or times out: 'abort' stops the run and fails it (before a "
        "backup: no snapshot is taken), 'continue' logs a warning and goes on.",
        examples=["abort", "continue"],
    )
    timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds after which the program is killed (which counts as a failure).",
        examples=[120],
    )
    always: bool = Field(
        default=False,
        description="after_backup only: run even when the backup failed (to undo a before_backup hook).",
        examples=[True],
    )
    cwd: str | None = Field(
        default=None, description="Working directory of the program.", examples=["/var/www/app"]
    )


class Hooks(_Model):
    """Programs run around a backup, in order."""

    before_backup: list[Hook] = Field(
        default_factory=list,
        description="Run before the backup starts.",
        examples=[[{"command": ["php", "/var/www/app/artisan", "down"], "on_failure": "abort"}]],
    )
    after_backup: list[Hook] = Field(
        default_factory=list,
        description="Run after the backup (with always = true also after a failed one).",
        examples=[
            [{"command": ["php", "/var/www/app/artisan", "up"], "on_failure": "continue", "always": True}]
        ],
    )

    @field_validator("before_backup")
    @classmethod
    def _always_only_after(cls, value: list[Hook]) -> list[Hook]:
        if any(h.always for h in value):
            raise ValueError("'always' is only meaningful in after_backup hooks")
        return value
