"""The suite's one fake clock: wall time (``time``) and monotonic time (``monotonic``) that move only when
a test advances them or code sleeps (``sleep`` returns at once and advances both). It satisfies every
clock protocol of safehold (the lock's, the SaaS client's, the retry wrapper's ``sleep``/``clock``)."""

from __future__ import annotations

import threading


class FakeClock:
    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.now = start  # monotonic
        self.wall = wall
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def clock(self) -> float:
        """The monotonic time, under the name the retry wrapper takes (``clock=``)."""
        return self.monotonic()

    def time(self) -> float:
        with self._lock:
            return self.wall

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
            self.wall += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)
            self.wall += max(seconds, 0.0)
