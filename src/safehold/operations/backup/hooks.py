"""Running the configured before/after-backup programs (maintenance mode, pausing queue workers)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol


class HookSpec(Protocol):
    @property
    def command(self) -> list[str]: ...
    @property
    def on_failure(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def cwd(self) -> str | None: ...


@dataclass
class HookResult:
    command: list[str]
    ok: bool
    message: str
    abort: bool
    #: "before_backup" or "after_backup": when it ran (output lists hooks where they ran).
    stage: str = ""


def run_hook(hook: HookSpec, stage: str = "") -> HookResult:
    """Run one hook of ``stage``; never raises. ``abort`` says the run must stop (failed with
    on_failure=abort)."""
    shown = " ".join(hook.command)
    try:
        proc = subprocess.run(
            hook.command,
            capture_output=True,
            timeout=hook.timeout,
            cwd=hook.cwd,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        msg = f"hook '{shown}' timed out after {hook.timeout:.0f}s"
        return HookResult(hook.command, False, msg, hook.on_failure == "abort", stage)
    except OSError as exc:
        msg = f"hook '{shown}' could not run: {exc.strerror}"
        return HookResult(hook.command, False, msg, hook.on_failure == "abort", stage)
    except ValueError:  # NUL in an argument: argv strings cannot carry it
        msg = f"hook '{shown}' could not run: an argument holds a NUL character"
        return HookResult(hook.command, False, msg, hook.on_failure == "abort", stage)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        msg = f"hook '{shown}' exited with status {proc.returncode}" + (
            f": {' / '.join(tail)}" if tail else ""
        )
        return HookResult(hook.command, False, msg, hook.on_failure == "abort", stage)
    return HookResult(hook.command, True, f"hook '{shown}' ok", False, stage)
