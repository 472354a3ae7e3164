"""A TCP proxy whose traffic can be paused: a network pause between two processes, on loopback.

Why a proxy and not a network namespace or a stopped RabbitMQ: the PostgreSQL and RabbitMQ of
this machine (and of CI's runner) are shared, so the pause must cut one broker node off from the
pipeline and nothing else. The node is given the proxy's ports as its database and message
broker addresses; the worker keeps the real ones.

``pause`` stops forwarding in both directions without closing anything: bytes wait in the
proxy (one chunk per direction) and in the kernel's socket buffers, and once those are full the
senders block, as over a link that went silent. Connections opened meanwhile are accepted but
carry nothing. ``resume`` forwards everything that waited, in order.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.stack import free_port


class PausableProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.connections = 0
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                if self._closed.is_set():
                    return
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                chunk = source.recv(65536)
                if not chunk:
                    break
                self._flowing.wait()  # read during a pause: held here until the link is back
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def pausable_proxy(target_port: int) -> Iterator[PausableProxy]:
    proxy = PausableProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
