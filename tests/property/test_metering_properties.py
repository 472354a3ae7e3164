"""DESIGN.md's metering rules as properties: order, repetition, rounding, attribution, lost closes, bandwidth."""

import random
from collections import Counter, defaultdict
from datetime import date

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kernel.instants import MICROS_PER_MINUTE, Month, day_of
from metering.domain.bandwidth import byte_increments, byte_reports
from metering.domain.events import EventType, MeteringEvent, parse_event
from metering.domain.minutes import billable_minutes, minutes_beginning_in, minutes_by_day, minutes_by_month
from metering.domain.sessions import sessionize
from metering.domain.usage import daily_usage
from tests.strategies import (
    MICROS_PER_DAY,
    OFFSETS,
    connection_traces,
    event_sets,
    format_time,
    generate_trace,
    instants,
    parsed,
    rfc3339_times,
)

RULES = settings(max_examples=200, deadline=None, database=None)
SLOW_RULES = settings(max_examples=50, deadline=None, database=None)

durations = st.one_of(
    st.integers(-5 * MICROS_PER_MINUTE, 5 * MICROS_PER_MINUTE),
    st.integers(0, 3 * MICROS_PER_DAY),
    st.integers(0, 70 * MICROS_PER_DAY),
)


def messages_by_key(usage):
    return {key: (row.messages_published, row.messages_delivered) for key, row in usage.items()}


def minutes_by_month_of(usage) -> Counter[tuple[str, str, Month]]:
    """Connection minutes per (account, service, month) from daily rows."""
    totals: Counter[tuple[str, str, Month]] = Counter()
    for (account, service, day), row in usage.items():
        totals[(account, service, Month.of_day(day))] += row.connection_minutes
    return +totals


# --- time parsing ------------------------------------------------------------------------------


@RULES
@given(instants().flatmap(lambda t: st.tuples(st.just(t), rfc3339_times(t))))
def test_any_rfc_3339_rendering_in_any_offset_parses_to_the_same_utc_microsecond(case):
    time_us, text = case
    data = {"account_id": "a", "service_id": "s", "channel": "c", "count": 1, "bytes": 0}
    raw = {"specversion": "1.0", "id": "1", "source": "broker/n", "type": "fanout.message.published", "data": data}
    event = parse_event({**raw, "time": text})
    assert isinstance(event, MeteringEvent), event
    assert event.time_us == time_us


# --- order and repetition --------------------------------------------------------------------


@st.composite
def shuffled_with_repeats(draw):
    """A set of events, and the same set shuffled with some events delivered again (sometimes re-rendered)."""
    dicts = draw(event_sets())
    events = parsed(dicts)
    repeats = draw(st.lists(st.integers(0, len(dicts) - 1), max_size=8)) if dicts else []
    again = []
    for index in repeats:
        # The same event resent, its time rendered in another offset: still the same (source, id).
        resent = {**dicts[index], "time": format_time(events[index].time_us, draw(st.sampled_from(OFFSETS)))}
        again.append(resent)
    arrived = dicts + again
    draw(st.randoms(use_true_random=False)).shuffle(arrived)
    return events, parsed(arrived)


@RULES
@given(shuffled_with_repeats())
def test_shuffling_or_repeating_events_never_changes_daily_usage(case):
    events, arrived = case
    assert daily_usage(arrived) == daily_usage(events)


@RULES
@given(shuffled_with_repeats())
def test_shuffling_or_repeating_events_never_changes_sessions(case):
    events, arrived = case
    assert sessionize(arrived) == sessionize(events)


@RULES
@given(event_sets(), st.randoms(use_true_random=False))
def test_messages_are_additive_over_any_two_overlapping_subsets(dicts, rnd):
    events = parsed(dicts)
    in_a = [rnd.random() < 0.6 for _ in events]
    in_b = [(not a) or rnd.random() < 0.3 for a in in_a]  # every event is in A or B, some in both
    a = [e for e, keep in zip(events, in_a, strict=True) if keep]
    b = [e for e, keep in zip(events, in_b, strict=True) if keep]
    both = [e for e, x, y in zip(events, in_a, in_b, strict=True) if x and y]

    whole: defaultdict[tuple[str, str, date], list[int]] = defaultdict(lambda: [0, 0])
    for sign, part in ((1, a), (1, b), (-1, both)):
        for key, (published, delivered) in messages_by_key(daily_usage(part)).items():
            whole[key][0] += sign * published
            whole[key][1] += sign * delivered
    expected = {key: tuple(v) for key, v in whole.items()}
    actual = messages_by_key(daily_usage(a + b))
    assert {k: v for k, v in actual.items() if v != (0, 0)} == {k: v for k, v in expected.items() if v != (0, 0)}


@SLOW_RULES
@given(st.integers(0, 2**32 - 1))
def test_a_realistic_trace_gives_the_same_usage_whatever_the_arrival_order_and_resends(seed):
    trace = generate_trace(seed, 1_500)
    rng = random.Random(seed)
    resent = trace + rng.sample(trace, 200)
    rng.shuffle(resent)

    assert daily_usage(parsed(resent)) == daily_usage(parsed(trace))


# --- minutes: rounded once, attributed to the month each minute begins in --------------------


@RULES
@given(instants(), durations)
def test_minutes_summed_over_months_and_over_days_equal_the_connections_billable_minutes(start, duration):
    minutes = billable_minutes(duration)

    assert minutes == max(1, -(-max(0, duration) // MICROS_PER_MINUTE))
    assert sum(minutes_by_month(start, minutes).values()) == minutes
    assert sum(minutes_by_day(start, minutes).values()) == minutes
    assert all(count > 0 for count in minutes_by_month(start, minutes).values())


@RULES
@given(instants(), st.integers(1, 400))
def test_each_minute_is_attributed_to_the_month_and_day_in_which_it_begins(start, minutes):
    begins = [start + k * MICROS_PER_MINUTE for k in range(minutes)]

    assert minutes_by_month(start, minutes) == Counter(Month.of(t) for t in begins)
    assert minutes_by_day(start, minutes) == Counter(day_of(t) for t in begins)


@RULES
@given(instants(), st.integers(1, 400), instants(), st.integers(0, 3 * MICROS_PER_DAY))
def test_minutes_beginning_in_any_half_open_period_match_an_enumeration(start, minutes, period_start, length):
    period_end = period_start + length
    expected = sum(1 for k in range(minutes) if period_start <= start + k * MICROS_PER_MINUTE < period_end)

    assert minutes_beginning_in(start, minutes, period_start, period_end) == expected


@RULES
@given(event_sets())
def test_daily_usage_bills_each_connection_its_rounded_total_split_by_start_month(dicts):
    events = parsed(dicts)
    expected: Counter[tuple[str, str, Month]] = Counter()
    for key, session in sessionize(events).items():
        for month, count in minutes_by_month(session.start_us, session.billable_minutes).items():
            expected[(key.account_id, key.service_id, month)] += count

    assert minutes_by_month_of(daily_usage(events)) == expected


# --- lost closes ------------------------------------------------------------------------------


@RULES
@given(connection_traces(skew=False, lose_close=False))
def test_a_lost_close_never_bills_past_the_last_time_the_connection_was_seen(dicts):
    seen = [e for e in parsed(dicts) if e.type is not EventType.CONNECTION_CLOSE]
    assume(seen)
    opens = [e.time_us for e in seen if e.type is EventType.CONNECTION_OPEN]
    start = min(opens) if opens else min(e.time_us for e in seen)
    last_seen = max(e.time_us for e in seen)
    [session] = sessionize(seen).values()
    billed = sum(row.connection_minutes for row in daily_usage(seen).values())

    assert billed == session.billable_minutes <= billable_minutes(last_seen - start)
    # No billed minute begins after the last time anyone saw the connection ...
    assert start + (billed - 1) * MICROS_PER_MINUTE <= max(last_seen, start)
    # ... so no day after the last-seen day gets any of its minutes.
    assert max(day for (_, _, day), row in daily_usage(seen).items() if row.connection_minutes) <= day_of(last_seen)


@RULES
@given(connection_traces(skew=False, lose_close=False))
def test_losing_the_close_never_bills_more_than_the_real_close_would(dicts):
    events = parsed(dicts)
    without_close = [e for e in events if e.type is not EventType.CONNECTION_CLOSE]
    assume(without_close)

    [closed] = sessionize(events).values()
    [lost] = sessionize(without_close).values()
    assert lost.billable_minutes <= closed.billable_minutes
    assert lost.end_us == lost.last_seen_us <= closed.end_us


# --- bandwidth --------------------------------------------------------------------------------


def total_bytes(events) -> int:
    return sum(increase for _, increase in byte_increments(byte_reports(events)))


@RULES
@given(connection_traces(), st.data())
def test_bandwidth_is_unchanged_by_repeated_reports(dicts, data):
    events = parsed(dicts)
    repeated = data.draw(st.lists(st.sampled_from(events), max_size=6))
    shuffled = data.draw(st.permutations(events + repeated))

    assert total_bytes(shuffled) == total_bytes(events)
    assert daily_usage(shuffled) == daily_usage(events)


@RULES
@given(connection_traces(resets=False, skew=False))
def test_without_resets_the_bandwidth_is_the_last_reported_counter(dicts):
    events = parsed(dicts)
    reports = byte_reports(events)
    last = max(reports).bytes_out if reports else 0  # the latest by (time, id); 0 with only an open

    assert total_bytes(events) == last
    assert sum(row.bytes_out for row in daily_usage(events).values()) == last


@RULES
@given(connection_traces(resets=False, skew=False), st.data())
def test_without_resets_losing_any_report_but_the_last_loses_nothing(dicts, data):
    events = sorted(parsed(dicts), key=lambda e: (e.time_us, e.id))
    kept = data.draw(st.lists(st.booleans(), min_size=len(events) - 1, max_size=len(events) - 1))
    survivors = [e for e, keep in zip(events, kept, strict=False) if keep] + [events[-1]]

    assert total_bytes(survivors) == total_bytes(events)


def counter_runs(values: list[int]) -> list[list[int]]:
    """Split counter readings into runs that never go down: a drop starts a new run."""
    runs: list[list[int]] = [[0]]
    for value in values:
        if value < runs[-1][-1]:
            runs.append([])
        runs[-1].append(value)
    return runs


@RULES
@given(connection_traces(skew=False))
def test_bandwidth_is_the_sum_of_the_final_reading_of_each_run_between_counter_resets(dicts):
    events = parsed(dicts)
    readings = [e.bytes_out for e in sorted(events, key=lambda e: (e.time_us, e.id)) if e.bytes_out is not None]

    assert total_bytes(events) == sum(run[-1] for run in counter_runs(readings))


@RULES
@given(event_sets())
def test_bytes_land_only_on_days_on_which_the_connection_reported_them(dicts):
    events = parsed(dicts)
    report_days = {
        (e.account_id, e.service_id, day_of(e.time_us)) for e in events if e.type.is_connection and e.bytes_out
    }

    usage = daily_usage(events)
    assert {key for key, row in usage.items() if row.bytes_out} <= report_days
    assert sum(row.bytes_out for row in usage.values()) == sum(
        total_bytes(group) for group in connection_groups(events).values()
    )


def connection_groups(events):
    groups = defaultdict(list)
    for e in events:
        if e.type.is_connection:
            groups[(e.account_id, e.service_id, e.connection_id)].append(e)
    return groups


@RULES
@given(event_sets())
def test_bandwidth_is_never_negative_and_never_more_than_the_sum_of_all_reported_values(dicts):
    events = parsed(dicts)
    reported = sum(e.bytes_out for e in events if e.type.is_connection and e.bytes_out is not None)

    usage = daily_usage(events)
    assert all(row.bytes_out >= 0 for row in usage.values())
    assert sum(row.bytes_out for row in usage.values()) <= reported


# --- the seeded trace is what other tests rely on ----------------------------------------------


def test_the_seeded_trace_is_deterministic_valid_and_spans_the_month_boundary():
    trace = generate_trace(42, 20_000)

    assert trace == generate_trace(42, 20_000)
    assert trace != generate_trace(43, 20_000)
    assert len(trace) == 20_000
    assert len({(e["source"], e["id"]) for e in trace}) == 20_000
    events = parsed(trace)
    assert {Month.of(e.time_us) for e in events} == {Month(2026, 1), Month(2026, 2)}
    assert {e.type for e in events} == set(EventType)
    sessions = sessionize(events).values()
    assert any(not s.closed for s in sessions)
    assert any(s.end_us < s.start_us for s in sessions)
    assert any(s.transport is None for s in sessions)


def test_the_seeded_trace_can_resend_events_under_the_same_key():
    trace = generate_trace(5, 2_000, duplicate_rate=0.05)

    assert len(trace) == 2_000
    assert len({(e["source"], e["id"]) for e in trace}) == 1_900
