"""Sending the outbox: each endpoint's due events, one at a time and in order, signed, over plain HTTP.

``deliver_due`` (the Celery task's service) finds the endpoints with a due event and gives each
its own thread, so a slow or dead receiver holds up only itself. An endpoint is *leased*
(``webhook_endpoint.lease_until``, taken by one conditional UPDATE) for the run, so two runs at once
never send one endpoint's events side by side or out of order. Each attempt:

1. takes the endpoint's earliest pending delivery, if due (``billing.domain.webhook_delivery``);
2. resolves the URL's host and judges every address against the SSRF rule, then connects to the
   address it judged (never a second lookup: DNS rebinding cannot swap in 127.0.0.1);
3. POSTs the Standard Webhooks payload, signed (``webhook-id``, ``webhook-timestamp``,
   ``webhook-signature``), with timeouts, no redirects followed and no proxy from the environment;
4. records the attempt and the delivery's next state in one transaction; a delivery given up
   after a day disables the endpoint, with an audit entry.

No database transaction is open while a request is in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import Connection, Engine, insert, or_, select, update
from standardwebhooks import Webhook

from billing.domain import webhook_delivery as rules
from billing.orm import AuditEntry
from billing.webhooks.endpoints import UrlPolicy, judge_address
from billing.webhooks.orm import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from kernel.network_policy import ip_literal

SYSTEM = "system"
USER_AGENT = "fanmeter-webhooks/1"
MAX_ERROR_LENGTH = 500
MAX_ANSWER_BYTES = 65536
Clock = Callable[[], datetime]  # the instant now: the system clock, or a test's


@dataclass(frozen=True)
class DeliveryConfig:
    """Timeouts, the retry policy and the address rule of one delivery run."""

    policy: rules.RetryPolicy = rules.DEFAULT_POLICY
    urls: UrlPolicy = field(default_factory=UrlPolicy)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    lease_s: float = 120.0  # longer than one attempt can take; renewed when half of it has passed
    max_per_endpoint: int = 200  # per run: the next beat goes on where this one stopped
    max_threads: int = 8


@dataclass(frozen=True)
class DeliveryRun:
    """What one run did: endpoints served, deliveries made, attempts failed, endpoints disabled."""

    endpoints: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    disabled: int = 0


class _Head(NamedTuple):
    delivery_id: int
    event_seq: int
    next_attempt_at: datetime | None
    state: rules.DeliveryState
    event_id: str
    event_type: str
    event_created_at: datetime
    data: dict[str, Any]


class Outcome(NamedTuple):
    """One HTTP attempt: the answer's status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int


def deliver_due(engine: Engine, config: DeliveryConfig, clock: Clock | None = None) -> DeliveryRun:
    """Deliver every endpoint's due events, each endpoint in its own thread (the beat task's service)."""
    now = _clock(clock)
    endpoint_ids = _due_endpoints(engine, now())
    if not endpoint_ids:
        return DeliveryRun()
    with ThreadPoolExecutor(max_workers=min(config.max_threads, len(endpoint_ids))) as pool:
        runs = list(pool.map(lambda endpoint_id: deliver_endpoint(engine, endpoint_id, config, now), endpoint_ids))
    return DeliveryRun(
        sum(1 for run in runs if run.endpoints),
        sum(run.delivered for run in runs),
        sum(run.failed_attempts for run in runs),
        sum(run.disabled for run in runs),
    )


def _clock(clock: Clock | None) -> Clock:
    return clock or (lambda: datetime.now(UTC))


def _due_endpoints(engine: Engine, now: datetime) -> list[str]:
    query = (
        select(WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == rules.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.disabled_at.is_(None),
        )
        .distinct()
    )
    with engine.connect() as conn:
        return sorted(conn.scalars(query))


def deliver_endpoint(
    engine: Engine, endpoint_id: str, config: DeliveryConfig, clock: Clock | None = None
) -> DeliveryRun:
    """Send one endpoint's due events in order until none is due, one fails, or the run's share is done."""
    now = _clock(clock)
    held = _take_lease(engine, endpoint_id, now(), config.lease_s)
    if held is None:
        return DeliveryRun()  # another run holds it: it sends these events, in order
    delivered = failed = disabled = 0
    renew_at = time.monotonic() + config.lease_s / 2
    try:
        with _client(config) as client:
            for _ in range(config.max_per_endpoint):
                if time.monotonic() > renew_at:
                    held = _renew_lease(engine, endpoint_id, held, now(), config.lease_s)
                    if held is None:
                        break  # lost it (this run stalled past its lease): the new holder goes on in order
                    renew_at = time.monotonic() + config.lease_s / 2
                endpoint = _endpoint(engine, endpoint_id)
                head = None if endpoint is None else _due_head(engine, endpoint_id, now())
                if endpoint is None or head is None:
                    break
                outcome = send(client, endpoint.url, endpoint.secret, head, config, now())
                state = _record(engine, endpoint_id, head, outcome, config, now())
                if state.status == rules.DELIVERED:
                    delivered += 1
                    continue
                failed += 1
                disabled += state.status == rules.FAILED
                break  # a failure: the later events wait behind this one
    finally:
        if held is not None:  # a lease lost to another run is theirs now: left alone
            _release_lease(engine, endpoint_id, held)
    return DeliveryRun(1, delivered, failed, disabled)


def _client(config: DeliveryConfig) -> httpx.Client:
    timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
    # trust_env=False: no proxy or .netrc from the environment; the judged address is what is reached.
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def _take_lease(engine: Engine, endpoint_id: str, now: datetime, lease_s: float) -> datetime | None:
    """Hold the endpoint until the returned instant (its value is this run's token), or None if held."""
    free = or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until <= now)
    until = now + timedelta(seconds=lease_s)
    statement = (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None), free)
        .values(lease_until=until)
    )
    with engine.begin() as conn:
        return until if conn.execute(statement).rowcount == 1 else None


def _renew_lease(engine: Engine, endpoint_id: str, held: datetime, now: datetime, lease_s: float) -> datetime | None:
    """Extend the lease this run holds (still ``held``, not lapsed and taken by another); None if lost."""
    until = now + timedelta(seconds=lease_s)
    statement = (
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_until == held, WebhookEndpoint.lease_until > now
        )
        .values(lease_until=until)
    )
    with engine.begin() as conn:
        return until if conn.execute(statement).rowcount == 1 else None


def _release_lease(engine: Engine, endpoint_id: str, held: datetime) -> None:
    mine = (WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_until == held)
    with engine.begin() as conn:
        conn.execute(update(WebhookEndpoint).where(*mine).values(lease_until=None))


class _Target(NamedTuple):
    url: str
    secret: str


def _endpoint(engine: Engine, endpoint_id: str) -> _Target | None:
    query = select(WebhookEndpoint.url, WebhookEndpoint.secret).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None)
    )
    with engine.connect() as conn:
        row = conn.execute(query).one_or_none()
    return None if row is None else _Target(*row)


_HEAD_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.event_seq,
    WebhookDelivery.status,
    WebhookDelivery.attempts,
    WebhookDelivery.failures,
    WebhookDelivery.next_attempt_at,
    WebhookDelivery.failing_since,
    WebhookEvent.id,
    WebhookEvent.type,
    WebhookEvent.created_at,
    WebhookEvent.data,
)


def _due_head(engine: Engine, endpoint_id: str, now: datetime) -> _Head | None:
    """The endpoint's earliest pending delivery, if it is due (a later one never goes first)."""
    query = (
        select(*_HEAD_COLUMNS)
        .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == rules.PENDING)
        .order_by(WebhookDelivery.event_seq)
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).one_or_none()
    if row is None:
        return None
    delivery_id, seq, status, attempts, failures, next_at, failing_since, event_id, event_type, created, data = row
    state = rules.DeliveryState(status, attempts, failures, next_at, failing_since)
    head = _Head(delivery_id, seq, next_at, state, event_id, event_type, created, dict(data))
    return rules.due_head([head], now)


def payload(event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """The Standard Webhooks body: ``{"type", "timestamp", "data"}`` as compact UTF-8 JSON."""
    timestamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": event_type, "timestamp": timestamp, "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``."""
    signature = Webhook(secret).sign(event_id, now, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def send(client: httpx.Client, url: str, secret: str, head: _Head, config: DeliveryConfig, now: datetime) -> Outcome:
    """One attempt: judge the host's addresses, then POST the signed event to the judged address."""
    started = time.monotonic()

    def outcome(code: int | None, error: str | None) -> Outcome:
        return Outcome(code, error, int((time.monotonic() - started) * 1000))

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reason, addresses = judge_address(host, port, config.urls)
    if reason is not None:
        return outcome(None, f"refused: {reason}")
    if not addresses:
        return outcome(None, f"{host} did not resolve")
    body = payload(head.event_type, head.event_created_at, head.data)
    headers = signed_headers(secret, head.event_id, body, now)
    pinned, extensions = _pinned(parts, host, port, addresses[0])
    headers["host"] = parts.netloc.rsplit("@", 1)[-1]
    try:
        with client.stream("POST", pinned, content=body, headers=headers, extensions=extensions) as response:
            _drain(response, config.read_timeout_s)
            return outcome(response.status_code, None if rules.succeeded(response.status_code) else _reason(response))
    except httpx.HTTPError as error:
        return outcome(None, f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH] or type(error).__name__)


def _drain(response: httpx.Response, within_s: float) -> None:
    """Read a small answer to its end, so its connection is kept for the next event.

    The status code is the answer: a body beyond ``MAX_ANSWER_BYTES``, or one still coming after
    ``within_s``, is not waited for (the connection is dropped instead).
    """
    deadline, read = time.monotonic() + within_s, 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > MAX_ANSWER_BYTES or time.monotonic() > deadline:
            return


def _pinned(parts: Any, host: str, port: int, address: str) -> tuple[str, dict[str, Any]]:
    """The URL with its host replaced by the judged address; TLS still names (and checks) the host."""
    literal = ip_literal(address)
    bracketed = f"[{address}]" if literal is not None and literal.version == 6 else address
    url = urlunsplit((parts.scheme, f"{bracketed}:{port}", parts.path or "/", parts.query, ""))
    extensions = {"sni_hostname": host} if parts.scheme == "https" and ip_literal(host) is None else {}
    return url, extensions


def _reason(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def _record(
    engine: Engine, endpoint_id: str, head: _Head, outcome: Outcome, config: DeliveryConfig, now: datetime
) -> rules.DeliveryState:
    """Write the attempt and the delivery's next state; give up and disable the endpoint after a day."""
    state = rules.after_attempt(head.state, rules.succeeded(outcome.status_code), now, config.policy)
    with engine.begin() as conn:
        conn.execute(
            insert(WebhookAttempt).values(
                delivery_id=head.delivery_id,
                at=now,
                response_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        conn.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == head.delivery_id)
            .values(
                status=state.status,
                attempts=state.attempts,
                failures=state.failures,
                next_attempt_at=state.next_attempt_at,
                failing_since=state.failing_since,
                last_attempt_at=now,
                last_response_code=outcome.status_code,
                delivered_at=state.delivered_at,
            )
        )
        if state.status == rules.FAILED:
            _disable_after_failures(conn, endpoint_id, head, outcome, now)
    return state


def _disable_after_failures(conn: Connection, endpoint_id: str, head: _Head, outcome: Outcome, now: datetime) -> None:
    account_id = conn.scalar(select(WebhookEndpoint.account_id).where(WebhookEndpoint.id == endpoint_id))
    reason = f"event {head.event_id} failed for a day: {outcome.error or outcome.status_code}"[:200]
    conn.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(disabled_at=now, disabled_reason=reason)
    )
    conn.execute(
        insert(AuditEntry).values(
            at=now,
            actor=SYSTEM,
            account_id=account_id,
            action="webhook.endpoint.disable",
            target=f"webhook-endpoint/{endpoint_id}",
            before={"enabled": True},
            after={"enabled": False, "reason": reason, "attempts": head.state.attempts + 1},
        )
    )
