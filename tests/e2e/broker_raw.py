"""Raw HTTP/1.1 exchanges for broker tests: requests no HTTP client would send (hostile heads, trickled
bytes, dot-segments as written), and what the broker answered."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass
class RawExchange:
    """A raw HTTP/1.1 exchange: what the client managed to send, and the status line it got back."""

    sent: int = 0
    answer: bytes = b""
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def status(self) -> int | None:
        parts = self.answer.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


def raw_exchange(port: int, parts: Iterable[bytes], timeout_s: float = 15) -> RawExchange:
    """Send ``parts`` (as fast as the broker takes them, until it stops reading) while reading its answer."""
    result = RawExchange()
    started = time.monotonic()
    done = threading.Event()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)

    def sender() -> None:
        try:
            for part in parts:
                if done.is_set():
                    return
                sock.sendall(part)
                result.sent += len(part)
        except OSError as error:
            result.errors.append(repr(error))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        while b"\r\n" not in result.answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            result.answer += chunk
    except OSError as error:
        result.errors.append(repr(error))
    finally:
        done.set()
        thread.join(timeout_s)
        sock.close()
    result.elapsed_s = time.monotonic() - started
    return result


def head(*lines: bytes, path: str = "/s/svc-a/plain") -> bytes:
    """A GET's request line and Host, then ``lines``."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + b"".join(lines)


def many_headers(count: int, path: str = "/s/svc-a/plain") -> list[bytes]:
    return [head(*(b"X-H%d: v\r\n" % i for i in range(count)), b"\r\n", path=path)]


def big_header(size: int, path: str = "/s/svc-a/plain") -> Iterator[bytes]:
    yield head(b"X-Big: ", path=path)
    for _ in range(size // MiB):
        yield b"a" * MiB
    yield b"\r\n\r\n"


def unterminated_header(size: int, path: str = "/s/svc-a/plain") -> Iterator[bytes]:
    yield head(b"X-Big: ", path=path)
    for _ in range(size // MiB):
        yield b"a" * MiB


def trickled(parts: list[bytes], pause_s: float) -> Iterator[bytes]:
    for part in parts:
        yield part
        time.sleep(pause_s)


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (HTTP clients remove dot-segments themselves): status and body
    (``http.client`` reads the answer, chunked or not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()
