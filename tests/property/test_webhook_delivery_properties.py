"""Properties of webhook delivery (billing/domain/webhook_delivery.py): the backoff schedule keeps
trying for exactly a day and no longer, a later event never overtakes an earlier one, and a
receiver that is down for any stretch shorter than the schedule gets every event, in order, and
after deduplicating on the event id exactly once each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import webhook_delivery as wd

T0 = datetime(2026, 12, 1, tzinfo=UTC)
policies = st.builds(
    wd.RetryPolicy,
    first_delay_s=st.integers(1, 600),
    max_delay_s=st.integers(600, 8 * 3600),
    give_up_after_s=st.integers(3600, 2 * 24 * 3600),
)


@dataclass(frozen=True)
class Pending:
    event_seq: int
    next_attempt_at: datetime | None


def failing_series(policy: wd.RetryPolicy, start: datetime) -> list[datetime]:
    """The instants a delivery is attempted when every attempt fails, each made when due."""
    state, at, instants = wd.new_delivery(start), start, []
    while state.status == wd.PENDING:
        instants.append(at)
        state = wd.after_attempt(state, False, at, policy)
        at = state.next_attempt_at or at
    assert state.status == wd.FAILED
    return instants


@given(policies, st.integers(1, 200))
def test_the_backoff_never_shrinks_and_stays_between_the_first_delay_and_the_cap(
    policy: wd.RetryPolicy, failures: int
) -> None:
    delay = policy.delay(failures)
    assert policy.delay(failures + 1) >= delay
    assert timedelta(seconds=min(policy.first_delay_s, policy.max_delay_s)) <= delay
    assert delay <= timedelta(seconds=policy.max_delay_s)


@given(policies)
def test_a_delivery_that_always_fails_is_tried_for_exactly_a_day_then_given_up(policy: wd.RetryPolicy) -> None:
    instants = failing_series(policy, T0)

    assert instants == sorted(set(instants))  # strictly later each time
    assert instants[-1] == policy.deadline(T0)  # the last attempt is at the day's end, not after
    gaps = [later - earlier for earlier, later in zip(instants, instants[1:], strict=False)]
    assert all(gap <= timedelta(seconds=policy.max_delay_s) for gap in gaps)


@given(policies, st.integers(0, 60), st.booleans())
def test_a_success_ends_the_series_and_a_redeliver_starts_a_new_one(
    policy: wd.RetryPolicy, failures_first: int, give_up: bool
) -> None:
    state, at = wd.new_delivery(T0), T0
    for _ in range(failures_first):
        if state.status != wd.PENDING:
            break
        state = wd.after_attempt(state, False, at, policy)
        at = state.next_attempt_at or at
    if state.status == wd.PENDING and not give_up:
        done = wd.after_attempt(state, True, at, policy)
        assert (done.status, done.next_attempt_at, done.delivered_at) == (wd.DELIVERED, None, at)
        assert done.attempts == state.attempts + 1
        state = done
    later = at + timedelta(days=3)
    again = wd.redelivered(state, later)
    assert (again.status, again.next_attempt_at, again.failing_since, again.failures) == (wd.PENDING, later, None, 0)
    assert again.attempts == state.attempts
    # the new series has a whole day again
    assert failing_series(policy, later)[-1] == policy.deadline(later)


pending_lists = st.lists(
    st.builds(
        Pending,
        st.integers(1, 50),
        st.one_of(st.none(), st.integers(-600, 600).map(lambda s: T0 + timedelta(seconds=s))),
    ),
    unique_by=lambda p: p.event_seq,
    max_size=12,
)


@given(pending_lists, st.randoms())
def test_only_the_earliest_pending_event_of_an_endpoint_is_sent_and_only_when_due(
    pending: list[Pending], random: Random
) -> None:
    shuffled = list(pending)
    random.shuffle(shuffled)

    head = wd.due_head(shuffled, T0)

    assert head == wd.due_head(pending, T0)  # the order the rows came in does not matter
    if head is not None:
        assert head.event_seq == min(p.event_seq for p in pending)
        assert head.next_attempt_at is not None and head.next_attempt_at <= T0
    elif pending:
        earliest = min(pending, key=lambda p: p.event_seq)
        assert earliest.next_attempt_at is None or earliest.next_attempt_at > T0


@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.integers(0, 10 * 3600), st.integers(1, 3 * 3600)), max_size=4),
    st.sets(st.integers(0, 40), max_size=2),
)
def test_a_receiver_down_for_a_while_gets_every_event_once_in_order_after_deduplication(
    events: int, outages: list[tuple[int, int]], lost_answers: set[int]
) -> None:
    """Outages (start, length in s) end within 13 h; up to two answers are lost after the receiver
    stored the event (the sender sees a failure, so the event comes again). The day of retries
    outlasts them all: nothing is given up."""
    policy = wd.DEFAULT_POLICY

    def up(at: datetime) -> bool:
        offset = (at - T0).total_seconds()
        return not any(start <= offset < start + length for start, length in outages)

    states = {seq: wd.new_delivery(T0) for seq in range(events)}
    received: list[int] = []
    now, step = T0, 0
    while any(s.status == wd.PENDING for s in states.values()):
        queue = [Pending(seq, s.next_attempt_at) for seq, s in states.items() if s.status == wd.PENDING]
        head = wd.due_head(queue, now)
        if head is None:
            earliest = min(queue, key=lambda p: p.event_seq)
            assert earliest.next_attempt_at is not None and earliest.next_attempt_at > now
            now = earliest.next_attempt_at  # later events wait behind it: the clock moves to it
            continue
        stored = up(now)
        if stored:
            received.append(head.event_seq)
        answered = stored and step not in lost_answers
        states[head.event_seq] = wd.after_attempt(states[head.event_seq], answered, now, policy)
        step += 1

    assert all(s.status == wd.DELIVERED for s in states.values())
    assert list(dict.fromkeys(received)) == list(range(events))  # each once after dedup, in order


def test_a_delay_before_any_failure_is_refused_and_only_2xx_counts_as_delivered() -> None:
    with pytest.raises(ValueError, match="at least one failure"):
        wd.DEFAULT_POLICY.delay(0)
    assert [wd.succeeded(code) for code in (None, 199, 200, 204, 299, 300, 410, 500)] == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
