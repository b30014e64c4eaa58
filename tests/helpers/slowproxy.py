"""A loopback TCP proxy that holds every new connection for a while before it reaches its server: a
slow network in front of a real server, so that a test of "slower than X" does not depend on how fast
the machine is (each connection through it takes at least ``delay`` seconds, on any machine)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class SlowProxy:
    port: int
    delay: float
    #: connections accepted so far (each was held ``delay`` seconds before it was forwarded)
    connections: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, target: tuple[str, int], delay: float, stop: threading.Event) -> None:
    with client:
        if stop.wait(delay):
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


@contextlib.contextmanager
def slow_proxy(target: tuple[str, int], delay: float) -> Iterator[SlowProxy]:
    """Listen on a free loopback port; forward each connection to ``target`` after ``delay`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    proxy = SlowProxy(listener.getsockname()[1], delay)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            proxy.connections += 1
            t = threading.Thread(target=_serve, args=(client, target, delay, stop), daemon=True)
            proxy._threads.append(t)
            t.start()

    acceptor = threading.Thread(target=accept, daemon=True, name="slow-proxy")
    acceptor.start()
    try:
        yield proxy
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        deadline = time.monotonic() + 10
        for t in proxy._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
