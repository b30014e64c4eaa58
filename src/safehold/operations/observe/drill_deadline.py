"""Deadlines of a drill's steps (``[drill] step_timeout``): a step still running then is interrupted like
Ctrl-C (SIGALRM), its own clean-up runs, and it fails with :class:`StepTimedOut`."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from safehold.errors import SafeholdError
from safehold.operations.observe.status import human_duration

#: After a step's deadline, how long it gets to end before it is interrupted again (it may have caught
#: the first interruption somewhere and gone on waiting).
AGAIN_AFTER = 60.0


class StepTimedOut(SafeholdError):
    """A drill step ran past ``[drill] step_timeout`` and was stopped."""

    default_hint = (
        "Something in that step waited without end (a server that does not answer, a lock that is not "
        "released, a program that does not finish): the lines above and the server's session list say "
        "what. If the component really needs longer, raise [drill] step_timeout."
    )


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`StepTimedOut` in the block when it runs longer than ``seconds``, and again every
    :data:`AGAIN_AFTER` s while it goes on. SIGALRM interrupts a blocking wait (a query, a pipe, a
    program that does not exit) as Ctrl-C does, so the step's own clean-up runs (programs killed, scratch
    databases dropped). Signals reach only the main thread: elsewhere the block runs without a deadline."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, AGAIN_AFTER)
        raise StepTimedOut(
            f"{what} was stopped after {human_duration(seconds)} ([drill] step_timeout), still running"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
