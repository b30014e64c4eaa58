"""Check what a user's real storage guarantees, in a scratch location that is removed afterwards.

:func:`validate_backend` runs a short version of the conformance suite against
``<location>/.safehold-validate-<random>`` (a folder, or a key prefix on S3) and returns one
:class:`Finding` per check, every check run even when an earlier one failed (except when the scratch
location cannot be created at all). ``safehold backend validate URL`` prints them.

Checks: ``create``, ``read_after_write``, ``empty_file``, ``ranges``, ``missing_file``,
``atomic_visibility`` (a reader polling during a save never sees a partial file), ``no_temp_files``,
``lock_overwrite``, ``list_lag`` (how long until new files are listed and removed ones are not),
``remove`` and ``cleanup``.

It runs on the unwrapped backend (no retries), so transient failures show up as findings.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from safehold.backends.base import Backend, FileType, Handle, SupportsScratch
from safehold.backends.wrappers import unwrap
from safehold.errors import BackendError, NotFoundError

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    """The result of one check: ``level`` "ok", "warning" (works, with a caveat) or "error" (a guarantee
    safehold relies on does not hold); ``seconds`` is a measured time where the check measures one."""

    check: str
    level: Level
    message: str
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.level != "error"


def validate_backend(
    backend: Backend,
    *,
    size: int = 4 * 1024 * 1024,
    list_lag_limit: float = 10.0,
    poll: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Finding]:
    """Run the checks in a scratch location of ``backend`` and return the findings.

    ``size`` is the size of the test file; ``list_lag_limit`` bounds how long listings are polled (every
    ``poll`` seconds) for new or removed files. Never raises for a storage failure: each one is a finding.
    """
    inner = unwrap(backend)
    if not isinstance(inner, SupportsScratch):
        return [Finding("create", "error", f"{type(inner).__name__} cannot open a scratch location")]
    name = f".safehold-validate-{secrets.token_hex(6)}"
    scratch = inner.scratch(name)
    where = scratch.properties.location
    try:
        scratch.create()
    except BackendError as e:
        scratch.close()
        return [Finding("create", "error", f"cannot create {where}: {e.message}")]
    findings = [Finding("create", "ok", f"created the scratch location {where}")]
    run = _Run(scratch, findings, size=size, limit=list_lag_limit, poll=poll, clock=clock, sleep=sleep)
    try:
        for check in (
            run.read_after_write,
            run.empty_file,
            run.ranges,
            run.missing_file,
            run.atomic_visibility,
            run.no_temp_files,
            run.lock_overwrite,
            run.list_lag,
            run.remove,
        ):
            try:
                check()
            except BackendError as e:
                findings.append(Finding(check.__name__, "error", f"failed: {e.message}"))
    finally:
        findings.append(run.cleanup(inner, name))
        scratch.close()
    return findings


class _Run:
    def __init__(
        self,
        be: Backend,
        findings: list[Finding],
        *,
        size: int,
        limit: float,
        poll: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.be = be
        self.findings = findings
        self.size = size
        self.limit = limit
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.data = os.urandom(size)
        self.h = Handle(FileType.DATA, secrets.token_hex(32))
        self.saved: set[Handle] = set()

    def add(self, check: str, level: Level, message: str, seconds: float | None = None) -> None:
        self.findings.append(Finding(check, level, message, seconds))

    def save(self, h: Handle, data: bytes) -> None:
        self.saved.add(h)
        self.be.save(h, data)

    def read_after_write(self) -> None:
        start = self.clock()
        self.save(self.h, self.data)
        took = self.clock() - start
        got = self.be.load(self.h)
        size = self.be.stat(self.h).size
        if got != self.data or size != self.size:
            self.add(
                "read_after_write",
                "error",
                f"a load right after a save returned {len(got)} of {self.size} bytes",
            )
        else:
            self.add("read_after_write", "ok", f"a {self.size}-byte file reads back at once", took)

    def empty_file(self) -> None:
        h = Handle(FileType.INDEX, secrets.token_hex(32))
        self.save(h, b"")
        got = self.be.load(h)
        level: Level = "ok" if got == b"" and self.be.stat(h).size == 0 else "error"
        self.add(
            "empty_file", level, "an empty file round-trips" if level == "ok" else "an empty file changed"
        )

    def ranges(self) -> None:
        wrong = []
        for offset, length in [
            (0, 100),
            (self.size // 3, 4096),
            (self.size - 10, None),
            (self.size - 10, 10),
        ]:
            want = self.data[offset : None if length is None else offset + length]
            if self.be.load(self.h, offset, length) != want:
                wrong.append(f"{offset}+{length}")
        try:
            past = self.be.load(self.h, self.size - 5, 10)
            wrong.append(f"a range past the end returned {len(past)} bytes instead of an error")
        except NotFoundError:
            wrong.append("a range past the end reported the file as missing")
        except BackendError:
            pass
        if wrong:
            self.add("ranges", "error", "byte ranges are not exact: " + ", ".join(wrong))
        else:
            self.add("ranges", "ok", "byte ranges are exact; a range past the end is an error")

    def missing_file(self) -> None:
        h = Handle(FileType.SNAPSHOT, secrets.token_hex(32))
        try:
            got = self.be.load(h)
            self.add(
                "missing_file", "error", f"loading a missing file returned {len(got)} bytes, not an error"
            )
        except NotFoundError:
            self.add("missing_file", "ok", "a missing file is reported as missing")

    def atomic_visibility(self) -> None:
        data = os.urandom(self.size)
        h = Handle(FileType.DATA, secrets.token_hex(32))
        seen: list[int] = []
        errors: list[str] = []
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                try:
                    got = self.be.load(h)
                except NotFoundError:
                    continue
                except BackendError as e:
                    errors.append(e.message)
                    return
                if got != data:
                    seen.append(len(got))
            try:
                if self.be.load(h) != data:
                    seen.append(-1)
            except BackendError as e:
                errors.append(e.message)

        t = threading.Thread(target=reader, name="safehold-validate-reader", daemon=True)
        t.start()
        try:
            self.save(h, data)
        finally:
            done.set()
            t.join(timeout=60)
        if seen:
            self.add(
                "atomic_visibility",
                "error",
                "a reader saw a partial file during a save "
                f"({', '.join(str(n) for n in seen[:3])} bytes): writes are not atomic",
            )
        elif errors:
            self.add("atomic_visibility", "error", f"a reader failed during a save: {errors[0]}")
        else:
            self.add("atomic_visibility", "ok", "no partial file was visible while a save ran")

    def no_temp_files(self) -> None:
        names = {f.name for f in self.be.list(FileType.DATA)}
        want = {h.name for h in self.saved if h.type is FileType.DATA}
        extra = names - want
        if extra:
            self.add("no_temp_files", "error", f"listing shows files nobody saved: {sorted(extra)[:3]}")
        else:
            self.add("no_temp_files", "ok", "listings show only complete files")

    def lock_overwrite(self) -> None:
        h = Handle(FileType.LOCK, secrets.token_hex(32))
        self.save(h, b"first")
        self.save(h, b"second")
        got = self.be.load(h)
        level: Level = "ok" if got == b"second" else "error"
        self.add(
            "lock_overwrite", level, "a lock file is replaced" if level == "ok" else f"lock reads {got!r}"
        )

    def _wait_listing(self, want: set[str], present: bool) -> float | None:
        """Seconds until all of ``want`` are (or none is) listed (0 when the first listing is right); None
        when the limit passed."""
        start = self.clock()
        first = True
        while True:
            names = {f.name for f in self.be.list(FileType.INDEX)}
            if (want <= names) if present else not (want & names):
                return 0.0 if first else self.clock() - start
            first = False
            if self.clock() - start >= self.limit:
                return None
            self.sleep(self.poll)

    def list_lag(self) -> None:
        hs = [Handle(FileType.INDEX, secrets.token_hex(32)) for _ in range(3)]
        for h in hs:
            self.save(h, h.name.encode())
        names = {h.name for h in hs}
        new = self._wait_listing(names, present=True)
        for h in hs:
            self.be.remove(h)
        gone = self._wait_listing(names, present=False)
        if new is None or gone is None:
            what = "new files" if new is None else "removed files"
            self.add("list_lag", "error", f"listings did not catch up with {what} within {self.limit:.0f}s")
        elif new > 0 or gone > 0:
            self.add(
                "list_lag",
                "warning",
                f"listings lag: new files appeared after {new:.1f}s, removed ones vanished after {gone:.1f}s "
                "(safehold tolerates this; prune waits before it trusts a listing)",
                max(new, gone),
            )
        else:
            self.add("list_lag", "ok", "listings are immediately consistent", 0.0)

    def remove(self) -> None:
        self.be.remove(self.h)
        self.be.remove(self.h)  # removing a missing file is not an error
        try:
            self.be.load(self.h)
            self.add("remove", "error", "a removed file can still be loaded")
        except NotFoundError:
            self.add("remove", "ok", "removed files are gone; removing a missing file is not an error")

    def cleanup(self, parent: SupportsScratch, name: str) -> Finding:
        try:
            for h in self.saved:
                self.be.remove(h)
            for t in FileType:
                for f in self.be.list(t):
                    self.be.remove(Handle(t, f.name))
            parent.drop_scratch(name)
        except BackendError as e:
            return Finding(
                "cleanup", "warning", f"could not remove {self.be.properties.location}: {e.message}"
            )
        return Finding("cleanup", "ok", f"removed {self.be.properties.location}")
