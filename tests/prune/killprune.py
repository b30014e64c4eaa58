"""Run ``prune`` in this process and SIGKILL it right before its N-th change to the repository.

``python -P killprune.py REPO N``: N counts saves and removals of every file but locks (whose refreshes
depend on timing), so each N is one exact point between two steps of a prune; N = 0 never kills and
prints how many changes a whole prune made. Run by ``test_prune_crash.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from safehold.backends.base import FileType, Handle
from safehold.backends.local import LocalBackend
from safehold.backends.wrappers import WrapperBackend
from safehold.engine.format.repository import Repository
from safehold.operations.maintenance.prune import PruneOptions, prune


class KillAt(WrapperBackend):
    def __init__(self, inner: LocalBackend, at: int) -> None:
        super().__init__(inner)
        self.at = at
        self.changes = 0
        self._mutex = threading.Lock()

    def _tick(self, h: Handle) -> None:
        if h.type is FileType.LOCK:
            return
        with self._mutex:
            self.changes += 1
            n = self.changes
        if n == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def save(self, h: Handle, data: bytes | memoryview) -> None:
        self._tick(h)
        super().save(h, data)

    def remove(self, h: Handle) -> None:
        self._tick(h)
        super().remove(h)


def main() -> None:
    path, at = sys.argv[1], int(sys.argv[2])
    backend = KillAt(LocalBackend(path), at)
    repo = Repository.open(backend, os.environ["SAFEHOLD_PASSWORD"])
    outcome = prune(repo, PruneOptions(max_unused=0.0, grace=0.0))
    print(
        json.dumps(
            {"changes": backend.changes, "removed": outcome.result.packs_removed if outcome.result else 0}
        )
    )


if __name__ == "__main__":
    main()
