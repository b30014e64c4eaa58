"""Helper processes: spawning them and the framing they speak over their stdin and stdout.

CPU-heavy work on many buffers (sealing blobs at backup, proving them at check) runs in helper
processes, ``python -m <module>``, because Python threads share one interpreter lock with the thread that
walks files or plans work. A helper is a child with pipes on its stdin and stdout (grown to 1 MiB);
it ignores ^C (the parent handles it and closes the pipe) and exits at end of input. When the parent
dies, its end of the pipes closes and the helper exits too.

Frame, both directions: ``u32 header length | u32 payload length | header | payload``; the header is
msgpack, the payload raw bytes.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from safehold.engine.memtune import tune_malloc
from safehold.errors import SafeholdError
from safehold.fsutil import grow_pipe

if TYPE_CHECKING:
    import subprocess  # imported when spawning: a helper process itself never needs it

_FRAME = struct.Struct(">II")


class HelperError(SafeholdError):
    """A helper process failed or exited."""

    default_hint = "Run the command again with --debug; if it repeats, report it with the output."


def serve_requests(rfd: int, wfd: int, handle: Callable[[object, bytearray], object]) -> None:
    """Answer each request frame with the header ``handle(header, payload)`` returns, until end of input."""
    while True:
        try:
            req, payload = recv_frame(rfd)
        except EOFError:
            return
        reply = handle(req, payload)
        del payload
        send_frame(wfd, reply)


def recv_init(rfd: int, fields: int, who: str) -> list[Any]:
    """A helper's first frame: the keys and settings its parent sends (a list of ``fields`` items)."""
    header, _ = recv_frame(rfd)
    if not (isinstance(header, list) and len(header) == fields):
        raise SystemExit(f"safehold {who}: expected an init frame")
    return header


def run(serve: Callable[[int, int], None]) -> None:
    """A helper's ``main``: serve requests on stdin/stdout until the parent closes them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and closes our input
    tune_malloc()
    try:
        serve(0, 1)
    except (BrokenPipeError, EOFError):
        pass


def spawn(module: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``python -m module``; returns the process, the fd to write to it, the fd to read from it."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    grow_pipe(wfd)
    grow_pipe(rfd)
    return proc, wfd, rfd


def stop(proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    """Close the helper's input (it exits when done), or kill it; then reap it."""
    try:
        proc.stdin.close()  # type: ignore[union-attr]
    except OSError:
        pass
    if kill:
        proc.kill()


def reap(proc: subprocess.Popen[bytes]) -> None:
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]


class Client:
    """The parent's side of one helper process: started with ``python -m module`` and sent ``init``;
    ``kind`` ("sealing", "checking", "restoring") names it in errors, raised as ``error``."""

    error: type[HelperError] = HelperError

    def __init__(self, module: str, kind: str, init: list[Any]) -> None:
        self._proc, self._wfd, self._rfd = spawn(module)
        self._kind = kind
        send_frame(self._wfd, init)

    def exited(self, detail: str | None = None) -> HelperError:
        """The error for a helper that is gone (``detail``: what the pipe said; default its exit code)."""
        detail = detail or f"exit code {self._proc.poll()}"
        return self.error(f"a {self._kind} helper process exited unexpectedly ({detail})")

    def close(self) -> None:
        """Close the helper's input (it exits when done with it) and reap it."""
        stop(self._proc)
        reap(self._proc)


def _write_all(fd: int, parts: list[bytes | bytearray | memoryview]) -> None:
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:1024])
        while n:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def send_frame(fd: int, header: object, payload: Sequence[bytes | bytearray | memoryview] = ()) -> None:
    h = msgpack.packb(header, use_bin_type=True)
    _write_all(fd, [_FRAME.pack(len(h), sum(len(p) for p in payload)), h, *payload])


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError
        got += k
    return buf


def recv_frame(fd: int) -> tuple[object, bytearray]:
    hlen, plen = _FRAME.unpack(_read_exact(fd, _FRAME.size))
    header = msgpack.unpackb(_read_exact(fd, hlen), raw=False)
    return header, _read_exact(fd, plen)
