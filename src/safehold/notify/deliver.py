"""Sending one message to several targets at once, each in its own thread, all within one deadline.

A target is a secret reference to an apprise URL (or a healthchecks ping URL, :mod:`.ping`). Each runs
in a daemon thread: resolving the reference (a command may be slow), checking the URL's syntax, and
sending. :func:`run_all` waits for them until the deadline and reports a :class:`Delivery` per target;
one that has not answered by then is reported as timed out and left behind (a daemon thread never keeps
the process alive), so a slow or dead service never holds up a backup longer than the timeout.

apprise logs to the ``apprise`` logger; its records (which may name the URL) are caught per thread, never
printed, and the reason a delivery failed is taken from them with every secret masked.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safehold import syntax
from safehold.errors import SafeholdError
from safehold.notify.redact import Redactor
from safehold.secrets import SecretRef


@dataclass
class Delivery:
    """The outcome of sending to one target. ``message`` never holds a secret."""

    target: str
    ok: bool
    message: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "message": self.message, "seconds": self.seconds}


class _ThreadLog(logging.Handler):
    """Keeps the apprise logger's warnings and errors per thread (the last few), prints nothing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = self.by_thread.setdefault(record.thread or 0, [])
            lines.append(record.getMessage())
            del lines[:-5]
        except Exception:  # a log record that cannot be formatted is dropped, never raised
            pass

    def take(self) -> list[str]:
        return self.by_thread.pop(threading.get_ident(), [])


_LOG = _ThreadLog()
_APPRISE_LOCK = threading.Lock()
_apprise: Any = None


def _load_apprise() -> Any:
    """The apprise module, imported once (its plugins import deprecated modules: not our warnings)."""
    global _apprise
    with _APPRISE_LOCK:
        if _apprise is None:
            logger = logging.getLogger("apprise")
            logger.addHandler(_LOG)
            logger.propagate = False  # its records may hold URLs: never to the root logger
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import apprise

                # Load the plugins now, under the same filter (some import deprecated modules).
                apprise.Apprise.instantiate("json://localhost")
            _apprise = apprise
    return _apprise


#: apprise notification types by event class.
_TYPES = {
    "failure": "failure",
    "partial": "warning",
    "breach": "warning",
    "warning": "warning",
    "success": "success",
}


def send_apprise(ref: SecretRef, title: str, body: str, klass: str, redactor: Redactor) -> str:
    """Send one message to the apprise URL ``ref`` names; returns "sent", raises SafeholdError (with a
    message free of secrets) when it was not delivered."""
    url = ref.resolve_for(syntax.URL, owner="notification URL")
    redactor.add_url(url)
    title, body = redactor(title), redactor(body)
    apprise = _load_apprise()
    asset = apprise.AppriseAsset(plugin_paths=[], storage_mode="memory")
    _LOG.take()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:
            scheme = url.partition("://")[0] if "://" in url else ""
            shown = f" ({scheme}://)" if scheme.isalnum() and len(scheme) < 20 else ""
            raise SafeholdError(
                f"the URL from {ref.describe()} is not one apprise can send to{shown}",
                hint="See apprise's list of services for the URL format.",
            )
        ok = plugin.notify(body=body, title=title, notify_type=_TYPES.get(klass, "info"), body_format="text")
    if not ok:
        said = [redactor(line) for line in _LOG.take()]
        raise SafeholdError(f"not delivered: {said[-1] if said else 'the service refused it'}")
    return "sent"


def run_all(jobs: dict[str, Callable[[], str]], timeout: float, redactor: Redactor) -> list[Delivery]:
    """Run every job (target name -> a callable that sends and returns a short result) in its own
    thread; wait at most ``timeout`` seconds in all. Never raises."""
    results: dict[str, Delivery] = {}
    lock = threading.Lock()

    def work(name: str, job: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            outcome = Delivery(name, True, job())
        except SafeholdError as exc:
            outcome = Delivery(name, False, redactor(exc.message))
        except Exception as exc:  # a plugin's own bug must not reach the operation
            outcome = Delivery(name, False, redactor(f"unexpected {type(exc).__name__}: {exc}"))
        outcome.seconds = round(time.monotonic() - started, 3)
        with lock:
            results[name] = outcome

    threads = [
        threading.Thread(target=work, args=(n, j), name=f"notify-{n}", daemon=True) for n, j in jobs.items()
    ]
    deadline = time.monotonic() + timeout
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return [
            results.get(name)
            or Delivery(
                name, False, f"no answer within {timeout:g} s (the message may still arrive)", timeout
            )
            for name in jobs
        ]
