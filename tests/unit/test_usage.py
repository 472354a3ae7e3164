"""Daily usage (the reference rule set) on hand-written traces, and the monthly usage report JSON."""

from datetime import date
from typing import Any

import pytest

from kernel.instants import Month
from metering.domain.usage import DailyUsage, daily_usage, usage_report
from tests.strategies import alive_event, close_event, delivered_event, open_event, parsed, published_event

# acct-1/svc-a/c1: opened 23:59:30 on 31 January, closed 00:01:45 UTC (2 min 15 s -> 3 minutes:
# one begins in January, two in February); bytes 100 then 250, both reported on 1 February.
# acct-1/svc-a/c2: close lost, last seen 00:01 on 2 February after opening 23:58 on 1 February
# (3 minutes: 23:58 and 23:59 on the 1st, 00:00 on the 2nd); 500 bytes reported on the 2nd.
# acct-1/svc-b/c3: open and close lost, one alive: 1 minute and 70 bytes on 15 January.
# acct-2/svc-x/c1: the same connection id in another account: 10 min 0.000001 s -> 11 minutes.
PUBLISHED_JAN = published_event("2026-01-31T23:59:59.999999Z", 2, service="svc-a", id="m1")
DELIVERED_FEB = delivered_event("2026-01-31T19:00:00-05:00", 4, service="svc-a", id="m3", source="broker/node-2")
TRACE = [
    open_event("2026-01-31T23:59:30Z", service="svc-a", connection="c1", id="c1-open"),
    alive_event("2026-02-01T05:30:30+05:30", 100, service="svc-a", connection="c1", id="c1-alive"),
    close_event("2026-01-31T16:01:45-08:00", 250, service="svc-a", connection="c1", id="c1-close"),
    open_event("2026-02-01T23:58:00Z", service="svc-a", connection="c2", id="c2-open"),
    alive_event("2026-02-02T00:01:00Z", 500, service="svc-a", connection="c2", id="c2-alive"),
    alive_event("2026-01-15T12:00:00Z", 70, service="svc-b", connection="c3", id="c3-alive"),
    PUBLISHED_JAN,
    delivered_event("2026-02-01T00:00:00Z", 5, service="svc-a", id="m2"),
    DELIVERED_FEB,
    dict(DELIVERED_FEB),  # delivered twice by the outbox: counted once
    published_event("2026-02-01T10:00:00Z", 1000, account="acct-2", service="svc-x", id="m4"),
    open_event("2026-02-01T10:00:00Z", account="acct-2", service="svc-x", connection="c1", id="x-open"),
    close_event("2026-02-01T10:10:00.000001Z", account="acct-2", service="svc-x", connection="c1", id="x-close"),
]

EXPECTED = {
    ("acct-1", "svc-a", date(2026, 1, 31)): DailyUsage(
        "acct-1", "svc-a", date(2026, 1, 31), connection_minutes=1, messages_published=2
    ),
    ("acct-1", "svc-a", date(2026, 2, 1)): DailyUsage(
        "acct-1", "svc-a", date(2026, 2, 1), connection_minutes=4, messages_delivered=9, bytes_out=250
    ),
    ("acct-1", "svc-a", date(2026, 2, 2)): DailyUsage(
        "acct-1", "svc-a", date(2026, 2, 2), connection_minutes=1, bytes_out=500
    ),
    ("acct-1", "svc-b", date(2026, 1, 15)): DailyUsage(
        "acct-1", "svc-b", date(2026, 1, 15), connection_minutes=1, bytes_out=70
    ),
    ("acct-2", "svc-x", date(2026, 2, 1)): DailyUsage(
        "acct-2", "svc-x", date(2026, 2, 1), connection_minutes=11, messages_published=1000
    ),
}


def test_daily_usage_of_a_hand_written_trace_matches_the_numbers_worked_out_by_hand():
    assert daily_usage(parsed(TRACE)) == EXPECTED


def test_daily_usage_does_not_depend_on_arrival_order():
    assert daily_usage(parsed(reversed(TRACE))) == EXPECTED


def test_a_message_stamped_one_microsecond_before_midnight_counts_on_the_old_day():
    usage = daily_usage(parsed([PUBLISHED_JAN]))

    assert list(usage) == [("acct-1", "svc-a", date(2026, 1, 31))]


def test_a_real_close_arriving_late_extends_a_connection_billed_to_its_last_seen_time():
    late_close = close_event("2026-02-02T00:05:00Z", 600, service="svc-a", connection="c2", id="c2-close")
    usage = daily_usage(parsed([*TRACE, late_close]))

    # c2 now runs 23:58 -> 00:05 = 7 minutes: 2 on the 1st, 5 on the 2nd; 100 more bytes on the 2nd.
    assert usage[("acct-1", "svc-a", date(2026, 2, 2))].connection_minutes == 5
    assert usage[("acct-1", "svc-a", date(2026, 2, 2))].bytes_out == 600
    assert usage[("acct-1", "svc-a", date(2026, 2, 1))] == EXPECTED[("acct-1", "svc-a", date(2026, 2, 1))]


def test_an_empty_trace_has_no_usage():
    assert daily_usage([]) == {}


# --- the monthly usage report ----------------------------------------------------------------

REPORT_KEYS = {
    "account_id",
    "month",
    "connection_minutes",
    "messages",
    "messages_published",
    "messages_delivered",
    "bytes_out",
    "services",
}
SERVICE_KEYS = {"service_id", "connection_minutes", "messages_published", "messages_delivered", "bytes_out"}


def report_json(account_id: str, month: str) -> dict[str, Any]:
    return usage_report(account_id, Month.parse(month), daily_usage(parsed(TRACE)).values()).to_json()


def assert_all_ints(document: dict[str, Any]) -> None:
    for name, value in document.items():
        if name in ("account_id", "month", "service_id", "services"):
            continue
        assert type(value) is int, f"{name} is {type(value).__name__}, not int"


def test_the_usage_json_has_exactly_the_documented_keys_and_integer_quantities():
    document = report_json("acct-1", "2026-02")

    assert set(document) == REPORT_KEYS
    assert document["services"], "the report should have a service"
    assert_all_ints(document)
    for service in document["services"]:
        assert set(service) == SERVICE_KEYS
        assert_all_ints(service)


def test_the_february_report_sums_only_februarys_days_for_that_account():
    assert report_json("acct-1", "2026-02") == {
        "account_id": "acct-1",
        "month": "2026-02",
        "connection_minutes": 5,
        "messages": 9,
        "messages_published": 0,
        "messages_delivered": 9,
        "bytes_out": 750,
        "services": [
            {
                "service_id": "svc-a",
                "connection_minutes": 5,
                "messages_published": 0,
                "messages_delivered": 9,
                "bytes_out": 750,
            }
        ],
    }


def test_the_january_report_lists_services_sorted_by_id_and_counts_published_plus_delivered_as_messages():
    document = report_json("acct-1", "2026-01")
    rows = sorted(daily_usage(parsed(TRACE)).values(), key=lambda row: row.service_id, reverse=True)

    assert [s["service_id"] for s in document["services"]] == ["svc-a", "svc-b"]
    assert usage_report("acct-1", Month(2026, 1), rows).to_json() == document
    assert (document["connection_minutes"], document["messages"], document["bytes_out"]) == (2, 2, 70)
    assert document["services"][1] == {
        "service_id": "svc-b",
        "connection_minutes": 1,
        "messages_published": 0,
        "messages_delivered": 0,
        "bytes_out": 70,
    }


def test_a_connection_across_the_month_boundary_is_billed_in_both_months_and_no_minute_twice():
    january = report_json("acct-1", "2026-01")["services"][0]["connection_minutes"]
    february = report_json("acct-1", "2026-02")["services"][0]["connection_minutes"]

    assert (january, february) == (1, 5)  # c1: 1 + 2, c2: 3


@pytest.mark.parametrize(("account", "month"), [("acct-3", "2026-02"), ("acct-2", "2026-01")])
def test_a_month_without_usage_reports_zeros_and_no_services(account, month):
    document = report_json(account, month)

    assert document == {
        "account_id": account,
        "month": month,
        "connection_minutes": 0,
        "messages": 0,
        "messages_published": 0,
        "messages_delivered": 0,
        "bytes_out": 0,
        "services": [],
    }
