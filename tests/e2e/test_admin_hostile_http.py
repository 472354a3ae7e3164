"""Hostile HTTP against a real `fanmeter admin` (uvicorn) process over a socket.

Finding 7: bodies over the limit are refused with 413 before authentication and parsing, by
declared Content-Length and while streaming, and the process does not buffer them (its RSS stays
flat). Finding 16: a client that goes away mid-body costs one log line, never a traceback.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fanmeter import migrate
from tests.stack import migrated_stack, run_cli, running_admin, settings_for

MIB = 1024 * 1024


@dataclass
class Admin:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    data_dir = tmp_path_factory.mktemp("hostile")
    with migrated_stack(data_dir, lambda env: migrate.upgrade(settings_for(env).resolved_database_url)) as env:
        log = data_dir / "admin.log"
        with running_admin(env, log) as running:
            yield Admin(running.url, running.port, running.process, log, env)


def _request(port: int, head: str, body_bytes: int, chunked: bool = False, piece: int = 64 * 1024) -> bytes:
    """Send ``head`` then up to ``body_bytes`` zeros (as chunks when ``chunked``), stopping as soon as the
    server answers; return the answer's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        block = b"0" * piece
        sent = 0
        try:
            while sent < body_bytes:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered: stop sending
                data = (b"%x\r\n%s\r\n" % (len(block), block)) if chunked else block
                sock.sendall(data)
                sent += len(block)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except ConnectionResetError:
            pass
        return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_20_mib_body_without_a_token_is_refused_with_413_by_its_declared_length(admin: Admin) -> None:
    head = (
        f"POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {20 * MIB}\r\n\r\n"
    )
    _request(admin.port, head, 0)  # warm up
    before = admin.rss_kib()

    answer = _request(admin.port, head, 20 * MIB)

    assert _status(answer) == 413, answer
    assert b"over the 1,048,576-byte limit" in answer
    assert admin.rss_kib() - before < 4 * 1024


def test_a_20_mib_chunked_body_without_a_token_is_refused_with_413_while_it_streams(admin: Admin) -> None:
    head = (
        "POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    _request(admin.port, head, 2 * MIB, chunked=True)  # warm up
    before = admin.rss_kib()

    answer = _request(admin.port, head, 20 * MIB, chunked=True)

    assert _status(answer) == 413, answer
    assert admin.rss_kib() - before < 4 * 1024


def test_the_events_route_keeps_its_10_mib_limit(admin: Admin) -> None:
    head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n"

    assert _status(_request(admin.port, head.format(11 * MIB), 11 * MIB)) == 413
    assert _status(_request(admin.port, head.format(2 * MIB), 2 * MIB)) == 401  # within its limit: no token


def test_a_client_that_goes_away_mid_body_costs_one_log_line_and_no_traceback(admin: Admin) -> None:
    created = run_cli(admin.env, "token", "create", "--role", "admin", "--email", "root@example.test")
    assert created.returncode == 0, created.stderr
    admin_token = created.stdout.strip().splitlines()[-1]
    ingest = httpx.post(
        f"{admin.url}/v1/ingest-tokens", json={"name": "probe"}, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert ingest.status_code == 201, ingest.text
    before = admin.log.read_text()
    for path, token in (("/v1/events", ingest.json()["token"]), ("/v1/accounts", admin_token)):
        with socket.create_connection(("127.0.0.1", admin.port), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{".encode()
            )
            time.sleep(0.3)
    time.sleep(0.5)

    logged = admin.log.read_text()[len(before) :]
    assert "Traceback" not in logged, logged
    assert "client went away before sending the whole request body: POST /v1/events (2 bytes received)" in logged
    assert admin.process.poll() is None
