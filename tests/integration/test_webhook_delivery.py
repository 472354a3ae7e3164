"""Webhook delivery against real HTTP receivers on loopback, on the configured database.

The delivery service (``billing.webhooks.delivery.deliver_due``, what the beat task runs) is
called directly with a clock the test moves, as the statement-draft sweep's tests call theirs:
retries a day apart take no real time. Loopback is allowed by the run's address rule
(``UrlPolicy(allowed_networks=127.0.0.0/8)``), as an operator would list it in
FANMETER_BACKEND_ALLOWED_NETWORKS; the last test shows delivery refused without it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing import backend_address
from billing.domain.roles import Principal
from billing.orm import Account, AuditEntry
from billing.webhooks import delivery, endpoints, events, outbox
from billing.webhooks.delivery import DeliveryConfig, deliver_due
from billing.webhooks.orm import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from fanmeter import webhooks_cli
from kernel.network_policy import parse_allowed_networks
from metering.celery_app import app as celery_app
from tests.admin_world import Clock
from tests.stack import run_cli
from tests.webhook_receiver import Receiver

ACCOUNT = "acc_hooks"
SUPERUSER = Principal(token_id="tok", kind="user", role="superuser", account_id=ACCOUNT, user_id="usr_super")
LOOPBACK = endpoints.UrlPolicy(parse_allowed_networks("127.0.0.0/8"))
CONFIG = DeliveryConfig(urls=LOOPBACK, connect_timeout_s=2, read_timeout_s=10)


@pytest.fixture
def db(engine: Engine) -> Engine:
    with Session(engine) as session:
        session.add(Account(id=ACCOUNT, name="Hooks", plan="paid", currency="USD", created_at=datetime.now(UTC)))
        session.commit()
    return engine


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().up()
    yield running
    running.down()


def register(engine: Engine, url: str, clock: Clock) -> endpoints.IssuedEndpoint:
    with Session(engine, expire_on_commit=False) as session:
        return endpoints.register(session, SUPERUSER, ACCOUNT, url, list(events.EVENT_TYPES), "test", LOOPBACK, clock())


def record(engine: Engine, count: int, clock: Clock, account: str = ACCOUNT) -> list[str]:
    with engine.begin() as conn:
        return [
            outbox.record_event(conn, events.STATEMENT_DRAFTED, account, {"n": n, "account_id": account}, now=clock())
            for n in range(count)
        ]


def deliveries(engine: Engine, endpoint_id: str) -> list[WebhookDelivery]:
    with Session(engine) as session:
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        return list(session.scalars(query.order_by(WebhookDelivery.event_seq)))


def run_when_due(engine: Engine, clock: Clock, endpoint_id: str) -> None:
    """Move the clock to the endpoint's next due attempt (its earliest pending event's) and run the sweep."""
    head = next(d for d in deliveries(engine, endpoint_id) if d.status == "pending")
    assert head.next_attempt_at is not None
    clock.now = max(clock.now, head.next_attempt_at)
    deliver_due(engine, CONFIG, clock)


def test_a_receiver_down_for_a_while_then_up_gets_every_event_exactly_once_after_deduplication(
    db: Engine, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    receiver.down()
    sent = record(db, 5, clock)

    for _ in range(3):  # refused connections: the first event is retried, the rest wait behind it
        run_when_due(db, clock, endpoint.id)
    receiver.script = [500]  # back up, but the first answer is lost: that event comes again
    receiver.up()
    run_when_due(db, clock, endpoint.id)
    sent += record(db, 2, clock)
    run_when_due(db, clock, endpoint.id)

    assert receiver.distinct_ids() == sent  # all, in the order they were recorded
    assert len(receiver.received) == len(sent) + 1  # one duplicate, removed by webhook-id
    rows = deliveries(db, endpoint.id)
    assert [row.status for row in rows] == ["delivered"] * 7
    assert rows[0].attempts == 5 and rows[0].last_response_code == 204
    with Session(db) as session:
        log = endpoints.delivery_log(session, session.get(WebhookEndpoint, endpoint.id))  # type: ignore[arg-type]
    assert [entry.attempts for entry in log][-1] == 5 and log[-1].status == "delivered"


def test_a_slow_receiver_does_not_hold_up_another_endpoint(db: Engine, receiver: Receiver) -> None:
    clock = Clock(datetime.now(UTC))
    slow = Receiver(hold=threading.Event()).up()
    try:
        register(db, slow.url, clock)
        register(db, receiver.url, clock)
        sent = record(db, 3, clock)
        sweep = threading.Thread(target=deliver_due, args=(db, CONFIG, clock))
        sweep.start()

        fast_got = receiver.wait_for(3)  # while the slow one still holds its first request

        assert [item.event_id for item in fast_got] == sent
        assert slow.received == []
        slow.hold.set()  # type: ignore[union-attr]
        sweep.join(30)
        assert slow.distinct_ids() == sent
    finally:
        slow.down()


def test_the_signature_verifies_with_the_reference_library_and_a_tampered_body_fails(
    db: Engine, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(UTC))
    issued = register(db, receiver.url, clock)
    [event_id] = record(db, 1, clock)

    deliver_due(db, CONFIG, clock)
    [got] = receiver.wait_for(1)

    assert issued.secret.startswith("whsec_")
    payload = Webhook(issued.secret).verify(got.body, got.headers)
    assert got.event_id == event_id
    assert payload == {
        "type": "statement.drafted",
        "timestamp": clock().isoformat().replace("+00:00", "Z"),
        "data": {"n": 0, "account_id": ACCOUNT},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(issued.secret).verify(got.body.replace(b'"n":0', b'"n":1'), got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoints.new_secret()).verify(got.body, got.headers)


def test_an_endpoint_failing_for_a_day_is_disabled_with_an_audit_entry_and_redeliver_resumes_it(
    db: Engine, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    receiver.answer = 503
    first, second = record(db, 2, clock)
    started = clock()

    for _ in range(40):
        run_when_due(db, clock, endpoint.id)
        if deliveries(db, endpoint.id)[0].status != "pending":
            break

    head, waiting = deliveries(db, endpoint.id)
    assert (head.status, waiting.status, waiting.attempts) == ("failed", "pending", 0)
    assert clock() == started + timedelta(days=1)  # the last attempt is a day after the first failure
    assert {item.event_id for item in receiver.received} == {first}  # the second waited behind it
    with Session(db) as session:
        row = session.get(WebhookEndpoint, endpoint.id)
        assert row is not None and row.disabled_at == clock() and row.disabled_reason is not None
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.endpoint.disable"))
        assert (entry.actor, entry.account_id, entry.target) == ("system", ACCOUNT, f"webhook-endpoint/{row.id}")
        assert entry.after is not None and entry.after["attempts"] == head.attempts

        receiver.answer = 204
        endpoints.redeliver(session, SUPERUSER, row, head.id, clock())
        endpoints.set_enabled(session, SUPERUSER, row, True, clock())
    deliver_due(db, CONFIG, clock)

    assert receiver.distinct_ids() == [first, second]
    assert [d.status for d in deliveries(db, endpoint.id)] == ["delivered", "delivered"]


def test_delivery_is_refused_when_the_address_rule_no_longer_allows_the_receiver(
    db: Engine, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    record(db, 1, clock)

    run = deliver_due(db, DeliveryConfig(), clock)  # no allowed networks: loopback is refused at connect time

    assert (run.delivered, run.failed_attempts) == (0, 1)
    assert receiver.received == []
    with Session(db) as session:
        row = session.get(WebhookEndpoint, endpoint.id)
        [entry] = endpoints.delivery_log(session, row)  # type: ignore[arg-type]
    assert entry.last_error is not None and entry.last_error.startswith("refused: 127.0.0.1 is a loopback address")
    assert entry.next_attempt_at == clock() + timedelta(seconds=30)


def test_an_event_rolled_back_with_its_change_is_never_sent_and_others_accounts_do_not_reach_an_endpoint(
    db: Engine, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    with db.connect() as conn, conn.begin() as transaction:
        outbox.record_event(conn, events.STATEMENT_FINALIZED, ACCOUNT, {}, now=clock())
        transaction.rollback()
    record(db, 1, clock, account="acc_someone_else")
    with db.begin() as conn:
        platform = outbox.record_event(conn, events.USAGE_THRESHOLD_CROSSED, None, {}, now=clock())

    deliver_due(db, CONFIG, clock)

    assert deliveries(db, endpoint.id) == [] and receiver.received == []
    assert platform.startswith("msg_")


def test_the_cli_adds_an_endpoint_delivers_and_shows_the_log(
    db: Engine, receiver: Receiver, stack_env: dict[str, str]
) -> None:
    """Three commands as processes (each start takes seconds on a busy machine), the rest in this
    process through click's runner (``bootstrap()`` gives it this process's runtime: the same database)."""
    env = {**stack_env, "FANMETER_BACKEND_ALLOWED_NETWORKS": "127.0.0.0/8"}
    added = run_cli(env, "webhooks", "add", receiver.url, "--account", ACCOUNT, "--event", "statement.drafted")
    assert added.returncode == 0, added.stderr
    endpoint_id = added.stdout.split()[1].rstrip(":")
    secret = added.stdout.split("(shown once): ")[1].strip()
    [event_id] = record(db, 1, Clock(datetime.now(UTC)))

    delivered = run_cli(env, "webhooks", "deliver")
    logged = run_cli(env, "webhooks", "log", endpoint_id, "--format", "json")

    assert "1 delivered" in delivered.stdout, delivered.stdout + delivered.stderr
    [entry] = json.loads(logged.stdout)
    assert (entry["event_id"], entry["status"], entry["last_response_code"]) == (event_id, "delivered", 204)
    [got] = receiver.received
    Webhook(secret).verify(got.body, got.headers)
    runner = CliRunner()
    again = runner.invoke(webhooks_cli.webhooks, ["redeliver", endpoint_id, str(entry["delivery_id"])])
    disabled = runner.invoke(webhooks_cli.webhooks, ["disable", endpoint_id])
    listed = runner.invoke(webhooks_cli.webhooks, ["list", "--account", ACCOUNT, "--format", "json"])
    enabled = runner.invoke(webhooks_cli.webhooks, ["enable", endpoint_id])
    unknown = runner.invoke(webhooks_cli.webhooks, ["log", "whe_nope"])

    assert [r.exit_code for r in (again, disabled, listed, enabled)] == [0, 0, 0, 0], again.output + disabled.output
    [shown] = json.loads(listed.output)
    assert (shown["id"], shown["enabled"], shown["event_types"]) == (endpoint_id, False, ["statement.drafted"])
    assert unknown.exit_code == 1 and "no webhook endpoint whe_nope" in unknown.output
    assert [d.status for d in deliveries(db, endpoint_id)] == ["pending"]  # redelivered, waiting for the next pass
    with Session(db) as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "cli").order_by(AuditEntry.id))
        assert list(actions) == [
            "webhook.endpoint.create",
            "webhook.delivery.redeliver",
            "webhook.endpoint.disable",
            "webhook.endpoint.enable",
        ]


def test_the_beat_task_runs_in_a_real_worker_whose_address_rule_refuses_loopback_at_send_time(
    db: Engine,
    receiver: Receiver,
    worker: Any,  # noqa: ARG001 (a real worker must run)
) -> None:
    """The suite's worker has no FANMETER_BACKEND_ALLOWED_NETWORKS: an endpoint registered while
    loopback was allowed is still refused when the worker connects (the rule is judged per attempt)."""
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    record(db, 1, clock)

    celery_app.send_task(celery_app.conf.beat_schedule["webhook-deliveries"]["task"])
    deadline = time.monotonic() + 60
    while deliveries(db, endpoint.id)[0].attempts == 0:
        assert time.monotonic() < deadline, "the worker did not run the delivery task within 60 s"
        time.sleep(0.1)

    assert receiver.received == []
    with Session(db) as session:
        [entry] = endpoints.delivery_log(session, session.get(WebhookEndpoint, endpoint.id))  # type: ignore[arg-type]
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert entry.last_error is not None and entry.last_error.startswith("refused: 127.0.0.1 is a loopback address")


def test_a_name_judged_public_at_registration_then_resolving_to_loopback_is_refused_or_pinned(
    db: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding. The resolver is replaced because no DNS server we control runs here: the name
    answers a public address when registered and 127.0.0.1 when delivered to. Without loopback
    allowed the attempt is refused; with it, the request goes to the address judged (no second
    lookup) and still names the host in ``Host``."""
    answers = {"now": "93.184.215.14"}
    monkeypatch.setattr(backend_address, "_getaddrinfo", lambda _host, _port: [answers["now"]])
    clock = Clock(datetime.now(UTC))
    url = f"http://hooks.example.test:{receiver.port}/hooks"
    with Session(db, expire_on_commit=False) as session:
        endpoint = endpoints.register(
            session, SUPERUSER, ACCOUNT, url, [events.STATEMENT_DRAFTED], "", endpoints.UrlPolicy(), clock()
        ).row
    [event_id] = record(db, 1, clock)
    answers["now"] = "127.0.0.1"

    refused = deliver_due(db, DeliveryConfig(), clock)
    clock.advance(timedelta(seconds=30))
    pinned = deliver_due(db, CONFIG, clock)

    assert (refused.failed_attempts, pinned.delivered) == (1, 1)
    [got] = receiver.received
    assert got.event_id == event_id and got.headers["host"] == f"hooks.example.test:{receiver.port}"
    with Session(db) as session:
        first_error = session.scalars(select(WebhookAttempt.error).order_by(WebhookAttempt.id)).first()
    assert (
        first_error == "refused: hooks.example.test resolves to 127.0.0.1 is a loopback address; webhook URLs "
        "must be public (an operator may allow it in FANMETER_BACKEND_ALLOWED_NETWORKS)"
    )
    assert endpoint.url == url


def test_event_data_keeps_decimals_exact_and_instants_in_utc_and_refuses_what_json_cannot_hold(db: Engine) -> None:
    at = datetime(2026, 3, 31, 23, 59, 59, 500000, tzinfo=UTC)
    with db.begin() as conn:
        event_id = outbox.record_event(conn, events.CREDIT_NOTE_ISSUED, ACCOUNT, {"total": Decimal("10.10"), "at": at})
        with pytest.raises(TypeError, match="time zone"):
            outbox.record_event(conn, events.CREDIT_NOTE_ISSUED, ACCOUNT, {"at": datetime(2026, 3, 1)})  # noqa: DTZ001
        with pytest.raises(TypeError, match="cannot hold complex"):
            outbox.record_event(conn, events.CREDIT_NOTE_ISSUED, ACCOUNT, {"total": 10.1j})
        with pytest.raises(ValueError, match="unknown webhook event type"):
            outbox.record_event(conn, "statement.eaten", ACCOUNT, {})
        assert outbox.record_events(conn, []) == []
    with Session(db) as session:
        [row] = session.scalars(select(WebhookEvent))
    assert (row.id, row.data) == (event_id, {"total": "10.10", "at": "2026-03-31T23:59:59.500000Z"})


def test_an_endpoint_held_by_another_run_is_left_to_it_until_its_lease_lapses(db: Engine, receiver: Receiver) -> None:
    clock = Clock(datetime.now(UTC))
    endpoint = register(db, receiver.url, clock).row
    record(db, 2, clock)
    held = delivery._take_lease(db, endpoint.id, clock(), CONFIG.lease_s)  # another run, mid-pass

    skipped = deliver_due(db, CONFIG, clock)
    clock.advance(timedelta(seconds=CONFIG.lease_s))  # that run died: its lease lapses
    stolen_back = delivery._renew_lease(db, endpoint.id, held, clock(), CONFIG.lease_s)  # type: ignore[arg-type]
    sent = deliver_due(db, CONFIG, clock)

    assert held is not None and stolen_back is None  # a lapsed lease cannot be renewed
    assert (skipped.delivered, sent.delivered) == (0, 2) and len(receiver.received) == 2
    mine = delivery._take_lease(db, endpoint.id, clock(), CONFIG.lease_s)
    assert mine is not None  # the pass released it
    clock.advance(timedelta(seconds=CONFIG.lease_s))  # this run stalls; another takes the endpoint
    theirs = delivery._take_lease(db, endpoint.id, clock(), CONFIG.lease_s)
    delivery._release_lease(db, endpoint.id, mine)  # the stalled run ends: it must not free theirs
    assert theirs is not None and delivery._take_lease(db, endpoint.id, clock(), CONFIG.lease_s) is None
