"""A real HTTP webhook receiver on loopback for tests: it stores what it is sent, can be down, slow or failing.

``down()`` closes its listening socket (connections are refused, as for a stopped service) and
``up()`` listens again on the same port. ``answer`` is the status it replies with (``script``
holds the next few first); ``hold`` makes every request wait until the test releases it (a slow
receiver, without sleeping).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    port: int = 0
    answer: int = 204
    script: list[int] = field(default_factory=list)  # the next answers, before ``answer`` again
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                with receiver.arrived:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                self.send_response(receiver.script.pop(0) if receiver.script else receiver.answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout_s: float = 20) -> list[Received]:
        """Wait (on a condition, not a sleep) until ``count`` requests arrived; what arrived."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout_s)
            return list(self.received)

    def distinct_ids(self) -> list[str]:
        """The event ids received, each once, in the order first received (the receiver's dedup)."""
        return list(dict.fromkeys(item.event_id for item in self.received))
