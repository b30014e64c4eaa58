"""The notifier: the configured targets and ping, the events each receives, one deadline for all.

Use::

    notifier = Notifier(config.notifications, host="web1", redactor=redactor_for(config, [passphrase]))
    notifier.begin("backup")               # in the background: URL/start, and backup.start to who asked
    ...                                    # the operation runs
    deliveries = notifier.finish(event)    # the event to the targets that want it, and the final ping

Nothing here raises: a delivery that failed or timed out is a :class:`Delivery` with ``ok`` false, which
the caller shows as a warning and records. The operation waits at most ``timeout`` seconds at the end
(the start notifications run while it works).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from safehold.config.notifications import Notifications, wanted
from safehold.errors import SafeholdError
from safehold.notify.deliver import Delivery, run_all, send_apprise
from safehold.notify.event import Event
from safehold.notify.ping import send_ping
from safehold.notify.redact import Redactor
from safehold.secrets import SecretRef

#: Operations whose start, success and failure go to the healthchecks ping.
PINGED = ("backup", "guard")
PING_TARGET = "healthchecks"
#: Secret files larger than this are not read just to mask their content in messages.
_MAX_SECRET_FILE = 64 * 1024


class Notifier:
    def __init__(self, settings: Notifications, *, host: str, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.host = host
        self.redactor = redactor or Redactor()
        self.run_id = str(uuid.uuid4())
        self._operation: str | None = None
        self._started: threading.Thread | None = None
        self._start_deliveries: list[Delivery] = []
        #: target name -> (reference, its events)
        self.targets: dict[str, tuple[SecretRef, list[str]]] = {}
        for ref in settings.urls:
            name = ref.describe()
            while name in self.targets:
                name += "'"
            self.targets[name] = (ref, list(settings.on))
        for name, target in settings.targets.items():
            self.targets[name] = (target.url, list(target.on if target.on is not None else settings.on))

    @property
    def configured(self) -> bool:
        return bool(self.targets or self.settings.healthchecks_ping)

    # ------------------------------------------------------------------------------------ jobs
    def _apprise_job(self, ref: SecretRef, event: Event) -> Callable[[], str]:
        title, body = event.title(), event.body()
        return lambda: send_apprise(ref, title, body, event.klass, self.redactor)

    def _ping_job(self, stage: str, body: str) -> Callable[[], str]:
        ref = self.settings.healthchecks_ping
        assert ref is not None
        timeout = self.settings.timeout
        return lambda: send_ping(
            ref, stage, body, run_id=self.run_id, timeout=timeout, redactor=self.redactor
        )

    def _jobs_for(self, event: Event) -> dict[str, Callable[[], str]]:
        return {
            name: self._apprise_job(ref, event)
            for name, (ref, on) in self.targets.items()
            if wanted(on, event.kind)
        }

    # ------------------------------------------------------------------------------------ use
    def begin(self, operation: str, *, profile: str | None = None, command: str | None = None) -> None:
        """Announce the start of ``operation`` in the background: the start ping (for backups) and a
        ``<operation>.start`` event to targets that asked for starts."""
        self._operation = operation
        jobs: dict[str, Callable[[], str]] = {}
        kind = f"{operation}.start"
        if kind in _start_kinds():
            event = Event(
                kind, self.host, f"{operation} started on {self.host}", profile=profile, command=command
            )
            jobs = self._jobs_for(event)
        if operation in PINGED and self.settings.healthchecks_ping is not None:
            jobs[PING_TARGET] = self._ping_job("start", "")
        if not jobs:
            return

        def work() -> None:
            self._start_deliveries = run_all(jobs, self.settings.timeout, self.redactor)

        self._started = threading.Thread(target=work, name="notify-start", daemon=True)
        self._started.start()

    def send(self, event: Event) -> list[Delivery]:
        """Send ``event`` to every target that wants it; waits at most ``timeout`` seconds."""
        jobs = self._jobs_for(event)
        return run_all(jobs, self.settings.timeout, self.redactor) if jobs else []

    def finish(self, event: Event) -> list[Delivery]:
        """The end of the operation begun: ``event`` to the targets that want it and, for a backup, the
        success or /fail ping (sent after the start ping has had its answer), all at once within one
        ``timeout``. Returns every delivery, and the start's failed ones."""
        jobs = self._jobs_for(event)
        if self._operation in PINGED and self.settings.healthchecks_ping is not None:
            stage = "success" if event.klass == "success" else "fail"
            body = "\n".join([event.summary, *event.log_tail]) if stage == "fail" else event.summary
            jobs[PING_TARGET] = self._after_start(self._ping_job(stage, body))
        done = run_all(jobs, self.settings.timeout, self.redactor) if jobs else []
        return [d for d in self._start_deliveries if not d.ok] + done

    def _after_start(self, job: Callable[[], str]) -> Callable[[], str]:
        """``job`` run once the start notifications are done (the end ping must not overtake the start)."""
        started, timeout = self._started, self.settings.timeout

        def run() -> str:
            if started is not None:
                started.join(timeout)
            return job()

        return run

    def test(self, target: str | None = None) -> list[Delivery]:
        """A test message to every target (or the one named), and a /log ping; raises SafeholdError for
        an unknown target name or when nothing is configured."""
        names = list(self.targets) + ([PING_TARGET] if self.settings.healthchecks_ping else [])
        if not names:
            raise SafeholdError(
                "no notification target is configured",
                hint="Add urls, targets or healthchecks_ping to [notifications] in the configuration.",
            )
        if target is not None and target not in names:
            raise SafeholdError(
                f"no notification target {target!r}", hint=f"Configured targets: {', '.join(names)}."
            )
        event = Event(
            "test",
            self.host,
            f"This is a test message from safehold on {self.host}: this target will hear about "
            "backups, checks, drills and prunes as configured.",
        )
        jobs: dict[str, Callable[[], str]] = {
            name: self._apprise_job(ref, event)
            for name, (ref, _) in self.targets.items()
            if target in (None, name)
        }
        if self.settings.healthchecks_ping is not None and target in (None, PING_TARGET):
            jobs[PING_TARGET] = self._ping_job("log", event.summary)
        return run_all(jobs, self.settings.timeout, self.redactor)


def _start_kinds() -> set[str]:
    from safehold.config.notifications import EVENT_KINDS

    return {k for k, (klass, _) in EVENT_KINDS.items() if klass == "start"}


def redactor_for(config: Any, secrets: list[str] | None = None) -> Redactor:
    """A redactor that knows ``secrets`` and every env and file secret reference of ``config`` (a
    :class:`~safehold.config.schema.Config`); command references are not run just for this."""
    redactor = Redactor(secrets)
    for ref in _references(config.model_dump(mode="json", exclude_none=True)):
        try:
            if ref.file and os.path.getsize(ref.file) > _MAX_SECRET_FILE:
                continue
            if ref.env or ref.file:
                value = ref.resolve()
                if "://" in value:
                    redactor.add_url(value)
                else:
                    redactor.add(value)
        except (SafeholdError, OSError):
            continue
    return redactor


def _references(data: Any) -> list[SecretRef]:
    """Every secret reference in a dumped configuration (table form or ``env:``/``file:`` strings)."""
    from safehold.secretvalue import parse_reference_string

    found: list[SecretRef] = []
    if isinstance(data, dict):
        keys = set(data)
        if (
            keys
            and keys <= {"env", "file", "key", "command"}
            and all(isinstance(v, str) for v in data.values())
        ):
            try:
                found.append(SecretRef.model_validate(data))
            except ValueError:
                pass
            return found
        for value in data.values():
            found += _references(value)
    elif isinstance(data, list):
        for value in data:
            found += _references(value)
    elif isinstance(data, str):
        parsed = parse_reference_string(data)
        if parsed and "command" not in parsed:
            try:
                found.append(SecretRef.model_validate(parsed))
            except ValueError:
                pass
    return found
