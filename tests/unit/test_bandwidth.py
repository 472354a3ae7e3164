"""Bandwidth from cumulative byte counters: increases between consecutive reports, resets, attribution."""

from datetime import date

from metering.domain.bandwidth import ByteReport, byte_increments, byte_reports
from metering.domain.sessions import ConnectionKey
from metering.domain.usage import connection_days, daily_usage
from tests.strategies import alive_event, close_event, open_event, parsed, published_event, utc_micros

KEY = ConnectionKey("acct-1", "svc-1", "conn-1")


def at(clock: str) -> int:
    """UTC microseconds of a time of day on 2026-02-10."""
    return utc_micros(f"2026-02-10T{clock}Z")


def total(dicts) -> int:
    return sum(increase for _, increase in byte_increments(byte_reports(parsed(dicts))))


WORKED_EXAMPLE = [
    open_event(at("10:00:00")),
    alive_event(at("10:01:00"), 100),
    alive_event(at("10:02:00"), 250),
    alive_event(at("10:03:00"), 40),  # the counter was reset
    close_event(at("10:03:30"), 90),
]


def test_the_worked_example_100_250_40_90_bills_340_bytes():
    increments = byte_increments(byte_reports(parsed(WORKED_EXAMPLE)))

    assert [increase for _, increase in increments] == [100, 150, 40, 50]
    assert total(WORKED_EXAMPLE) == 340


def test_a_value_lower_than_the_one_before_counts_whole_as_the_increase():
    reports = [ByteReport(1, "a", "broker/n", 500), ByteReport(2, "b", "broker/n", 30)]

    assert byte_increments(reports) == [(1, 500), (2, 30)]


def test_a_duplicated_report_adds_nothing():
    duplicate = dict(WORKED_EXAMPLE[2])

    assert total([*WORKED_EXAMPLE, duplicate]) == 340
    # Even when the same reading is resent under a new id it adds nothing.
    resent = alive_event(at("10:02:00"), 250, id="resent-with-a-new-id")
    assert total([*WORKED_EXAMPLE, resent]) == 340


def test_a_lost_report_loses_nothing_because_the_next_report_carries_it():
    reports = [
        open_event(at("10:00:00")),
        alive_event(at("10:01:00"), 100),
        alive_event(at("10:02:00"), 250),
        close_event(at("10:03:00"), 400),
    ]

    assert total(reports) == 400
    assert total([reports[0], reports[1], reports[3]]) == 400
    assert total([reports[0], reports[3]]) == 400


def test_a_missing_open_loses_nothing_since_the_open_counts_as_zero():
    assert total(WORKED_EXAMPLE[1:]) == total(WORKED_EXAMPLE) == 340


def test_the_open_is_the_zero_the_counter_starts_from_not_a_report():
    increments = byte_increments(byte_reports(parsed([open_event(at("10:00:00")), alive_event(at("10:01:00"), 70)])))

    assert increments == [(at("10:01:00"), 70)]


def test_an_open_stamped_just_after_an_alive_is_not_a_counter_reset():
    events = [alive_event(at("10:00:02"), 100), open_event(at("10:00:05")), alive_event(at("10:01:00"), 150)]

    assert total(events) == 150


def test_reports_are_taken_in_time_order_whatever_order_they_arrive_in():
    shuffled = [WORKED_EXAMPLE[i] for i in (4, 2, 0, 3, 1)]

    assert byte_increments(byte_reports(parsed(shuffled))) == byte_increments(byte_reports(parsed(WORKED_EXAMPLE)))
    assert total(shuffled) == 340


def test_an_increase_is_attributed_to_the_day_of_the_later_report():
    events = parsed(
        [
            open_event("2026-01-31T23:58:00Z"),
            alive_event("2026-01-31T23:59:00Z", 100),
            alive_event("2026-02-01T00:00:30Z", 250),
            close_event("2026-02-01T00:00:45Z", 260),
        ]
    )

    assert byte_increments(byte_reports(events))[1] == (utc_micros("2026-02-01T00:00:30Z"), 150)
    by_day = {part.day: part.bytes_out for part in connection_days(KEY, events)}
    assert by_day == {date(2026, 1, 31): 100, date(2026, 2, 1): 160}


def test_only_bytes_out_is_billed_and_message_bytes_are_informational():
    events = parsed(
        [
            open_event(at("10:00:00")),
            alive_event(at("10:01:00"), 100, bytes_in=7_000),
            close_event(at("10:01:30"), 150, bytes_in=9_000),
            published_event(at("10:01:10"), 1, service="svc-1", size=1_000_000),
        ]
    )

    [row] = daily_usage(events).values()
    assert row.bytes_out == 150


def test_bandwidth_is_counted_per_connection_so_one_connections_reset_does_not_touch_another():
    events = parsed(
        [
            alive_event(at("10:01:00"), 1_000, connection="a"),
            alive_event(at("10:01:30"), 10, connection="b"),
            alive_event(at("10:02:00"), 1_500, connection="a"),
            alive_event(at("10:02:30"), 20, connection="b"),
        ]
    )

    [row] = daily_usage(events).values()
    assert row.bytes_out == 1_500 + 20


def test_a_second_open_of_the_same_connection_does_not_count_its_bytes_twice():
    events = [
        open_event(at("10:00:00"), id="open-1"),
        alive_event(at("10:01:00"), 100),
        open_event(at("10:01:30"), id="open-2"),
        alive_event(at("10:02:00"), 150),
    ]

    assert total(events) == 150
