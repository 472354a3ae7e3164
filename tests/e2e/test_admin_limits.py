"""The admin service's limits, against a real `fanmeter admin` (uvicorn) process over sockets, with a
real worker behind `POST /v1/events` (docs/security.md, "Limits"). It runs on the broker tests'
session stack (an account of its own), so it starts no stack of its own:

- an ingest token over its rate is 429 with Retry-After and a JSON reason, before its body is read:
  nothing of a refused batch is recorded, every accepted one is, and a refused batch sent again after
  the wait is counted once; another token is not slowed;
- a head trickled past the header timeout is 408; a body trickled past the body timeout is 408 and its
  connection closed; a body still trickling after the answer (401) is cut off; a head over the size
  limit is 431.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.stack import run_cli, running_admin
from tests.strategies import published_event, utc_micros

RATE, BURST = 1, 3
ACCOUNT = "acct-admin-limits"
BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class Admin:
    url: str
    port: int
    root: str  # a platform admin's token
    ingest: tuple[str, str]  # two ingest tokens


@pytest.fixture(scope="module")
def admin(broker_stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    env = {
        **broker_stack_env,
        "FANMETER_EVENTS_RATE_PER_SECOND": str(RATE),
        "FANMETER_EVENTS_RATE_BURST": str(BURST),
        "FANMETER_ADMIN_HEADER_TIMEOUT_SECONDS": "2",
        "FANMETER_ADMIN_BODY_TIMEOUT_SECONDS": "1",
    }
    created = run_cli(env, "token", "create", "--role", "admin", "--email", "limits@example.test")
    assert created.returncode == 0, created.stderr
    root = created.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {root}"}
    with running_admin(env, tmp_path_factory.mktemp("admin-limits") / "admin.log") as running:
        tokens = [
            httpx.post(f"{running.url}/v1/ingest-tokens", json={"name": f"limits-{n}"}, headers=headers).json()["token"]
            for n in range(2)
        ]
        yield Admin(running.url, running.port, root, (tokens[0], tokens[1]))


def _batch(n: int, count: int) -> str:
    """One published event of ``count`` messages, its id unique to batch ``n``."""
    event = published_event(utc_micros("2026-06-10T12:00:00Z") + n, count, account=ACCOUNT, service="svc")
    return json.dumps([{**event, "id": f"limits-{n}"}])


def _send(admin: Admin, body: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": BATCH}
    return httpx.post(f"{admin.url}/v1/events", content=body, headers=headers, timeout=30)


def _published(admin: Admin, batches: list[str], token: str) -> None:
    """Wait until every batch is folded in."""
    deadline = time.monotonic() + 60
    for batch_id in batches:
        while True:
            status = httpx.get(
                f"{admin.url}/v1/events/batches/{batch_id}", headers={"Authorization": f"Bearer {token}"}
            ).json()
            if status["done"]:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)


def _usage(admin: Admin) -> int:
    headers = {"Authorization": f"Bearer {admin.root}"}
    usage = httpx.get(f"{admin.url}/v1/accounts/{ACCOUNT}/usage", params={"month": "2026-06"}, headers=headers)
    assert usage.status_code == 200, usage.text
    return int(usage.json()["messages_published"])


def test_an_ingest_token_over_its_rate_is_429_and_nothing_refused_is_recorded_until_sent_again(admin: Admin) -> None:
    token, other = admin.ingest
    counts = [10**n for n in range(8)]  # each batch's messages: any lost or doubled one shows
    answers = [_send(admin, _batch(n, count), token) for n, count in enumerate(counts)]
    accepted = [n for n, a in enumerate(answers) if a.status_code == 202]
    refused = [n for n, a in enumerate(answers) if a.status_code == 429]
    assert len(accepted) >= BURST and sorted(accepted + refused) == list(range(len(counts)))
    assert refused, [a.status_code for a in answers]
    limit = answers[refused[0]]
    retry_after = int(limit.headers["retry-after"])
    assert 1 <= retry_after <= 1 / RATE + 1
    detail = limit.json()["detail"]
    assert "ingest token" in detail and token not in detail and "nothing of this request was accepted" in detail

    other_batch = _send(admin, _batch(99, 7), other)  # another token: its own bucket
    assert other_batch.status_code == 202
    _published(admin, [answers[n].json()["batch_id"] for n in accepted], token)
    _published(admin, [other_batch.json()["batch_id"]], other)
    assert _usage(admin) == sum(counts[n] for n in accepted) + 7  # nothing of a refused batch

    resent = []
    for n in refused:  # sent again after the wait: accepted, and counted once
        time.sleep(retry_after)
        answer = _send(admin, _batch(n, counts[n]), token)
        assert answer.status_code == 202, answer.text
        resent.append(answer.json()["batch_id"])
    _published(admin, resent, token)
    assert _usage(admin) == sum(counts) + 7


def _raw(port: int, first: bytes, trickle: bytes, every_s: float, limit_s: float) -> tuple[bytes, float, bool]:
    """Send ``first``, then ``trickle`` a byte at a time every ``every_s``; return the answer, when it came, and
    whether the connection was closed by the server within ``limit_s``."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(first)
        started, answer, closed = time.monotonic(), b"", False
        sock.settimeout(every_s)
        answered_at = 0.0
        for byte in trickle * 1000:
            if time.monotonic() - started > limit_s:
                break
            try:
                sock.sendall(bytes([byte]))
                got = sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not got:
                closed = True
                break
            answer += got
            answered_at = answered_at or time.monotonic() - started
        return answer, answered_at, closed


def test_a_head_trickled_past_the_header_timeout_is_408(admin: Admin) -> None:
    answer, at, closed = _raw(admin.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", 0.2, 8)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 1.5 < at < 4 and closed


def test_a_body_trickled_past_the_body_timeout_is_408_and_the_connection_closed(admin: Admin) -> None:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin.ingest[1]}\r\n"
        f"Content-Type: {BATCH}\r\nContent-Length: 5000\r\n\r\n["
    ).encode()
    answer, at, closed = _raw(admin.port, head, b" ", 0.2, 8)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer and b"connection: close" in answer.lower()
    assert at < 3.5 and closed


def test_a_body_still_trickling_after_the_answer_is_cut_off(admin: Admin) -> None:
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n["
    answer, _, closed = _raw(admin.port, head, b" ", 0.2, 8)
    assert answer.startswith(b"HTTP/1.1 401"), answer  # answered at once, without a token
    assert closed  # before: every trickled byte kept the connection alive


def test_a_head_over_the_size_limit_is_431(admin: Admin) -> None:
    with socket.create_connection(("127.0.0.1", admin.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")
