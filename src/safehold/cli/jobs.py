"""What a command does differently when it runs as a scheduled job (``SAFEHOLD_JOB`` set by the units and
cron lines of ``safehold schedule install``).

* :func:`delay` — under cron (``SAFEHOLD_JOB_DELAY=N``), wait a random 0..N seconds first, as systemd's
  ``RandomizedDelaySec`` does for timers.
* :func:`take_lock` — jobs of one host never overlap: each holds an exclusive ``flock`` on the host's
  job lock (``/run/safehold/jobs.lock`` for root; ``SAFEHOLD_JOB_LOCK`` chooses another file) for its
  whole run, and waits for it up to ``--lock-wait`` (which the jobs pass, from ``[schedule] lock_wait``).
  A job that cannot get it fails with a message naming the job that holds it; since this happens inside
  safehold, the failure is notified and recorded like any other.

The lock file is created with ``O_NOFOLLOW`` in a folder only its owner may enter, and the lock is
released by the kernel when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import tempfile
import time
from pathlib import Path

from safehold.cli.app import App
from safehold.errors import SafeholdError
from safehold.operations.observe.audit import JOB_ENV

LOCK_ENV = "SAFEHOLD_JOB_LOCK"
#: The longest random delay honoured (a day).
_MAX_DELAY = 86400
#: Descriptors of the job lock held by this process (kept open until it exits).
_HELD: list[int] = []


def lock_path() -> Path:
    explicit = os.environ.get(LOCK_ENV)
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/run/safehold/jobs.lock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(runtime) / f"safehold-{os.geteuid()}" / "jobs.lock"


def delay() -> None:
    """Sleep the random start delay of a cron job (nothing otherwise)."""
    if not os.environ.get(JOB_ENV):
        return
    from safehold.operations.schedule.jobs import DELAY_ENV  # only jobs pay for its imports

    text = os.environ.get(DELAY_ENV, "")
    if text.isdigit() and int(text) > 0:
        time.sleep(random.uniform(0, min(int(text), _MAX_DELAY)))


def take_lock(app: App) -> None:
    """Hold the host's job lock for the rest of the process when running as a scheduled job."""
    job = os.environ.get(JOB_ENV)
    if not job or _HELD:
        return
    path = lock_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SafeholdError(
            f"cannot open the job lock {path}: {exc.strerror}",
            hint=f"Set {LOCK_ENV} to a file in a folder only root can write.",
        ) from None
    wait = app.lock_wait_seconds()
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                holder = re.sub(r"[^\w .:()-]", "", os.pread(fd, 200, 0).decode("utf-8", "replace"))[:100]
                os.close(fd)
                raise SafeholdError(
                    f"scheduled job {job} did not start: another scheduled job "
                    f"({holder.strip() or 'unknown'}) still held the job lock after "
                    f"{app.lock_wait or 0}",
                    hint="See 'safehold schedule status' and 'safehold log'; if jobs take this long, raise "
                    "[schedule] lock_wait or space the calendars apart.",
                ) from None
            time.sleep(min(1.0, left))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{job} (pid {os.getpid()})\n".encode(), 0)
    _HELD.append(fd)
