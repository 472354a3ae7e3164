"""`fanmeter pushpin-stats`: Pushpin's stats records to fanmeter events (pure translation, no Pushpin)."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from broker.usage.events import Subject
from fanmeter.cli import main
from fanmeter.pushpin_stats.adapter import AdapterError, AdapterStore, StatsAdapter
from fanmeter.pushpin_stats.records import BadRecord, ConnRecord, MessageRecord, ReportRecord, parse_frame
from fanmeter.pushpin_stats.routemap import RouteMap, RouteMapError, load_route_map, parse_route_map
from fanmeter.pushpin_stats.translate import MonotonicStamp, Translator, connection_id_for
from kernel.instants import Month
from metering.domain.events import EventType, MeteringEvent, parse_event
from metering.domain.minutes import billable_minutes
from metering.domain.usage import daily_usage, usage_report

T0 = datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)
MONTH_END = datetime(2026, 11, 30, 23, 59, 0, tzinfo=UTC)
MAIN, CHAT = Subject("acme", "svc-main"), Subject("acme", "svc-chat")
ROUTES = RouteMap(routes={"chat": CHAT}, prefixes=(("chat-", CHAT),), default=MAIN)
H = "pushpin-handler_30527"

# Frames exactly as Debian's pushpin 1.36 sends them with stats_format=json (captured from a real run).
OPEN = b'conn J{"from":"%s","id":"condure:0-0-1","peer-address":"127.0.0.1","route":"chat","ttl":120,"type":"http"}' % (
    H.encode()
)
REFRESH = b'conn J{"from":"%s","id":"condure:0-0-1","peer-address":"127.0.0.1","ttl":120,"type":"http"}' % H.encode()
GONE = b'conn J{"from":"%s","id":"condure:0-0-1","unavailable":true}' % H.encode()
MESSAGE = b'message J{"channel":"chat-room","count":2,"from":"%s","item-id":"i1","transport":"http-stream"}' % (
    H.encode()
)
REPORT = b'report J{"connections":2,"duration":2000,"from":"%s","minutes":0,"received":3,"sent":2}' % H.encode()


def at(seconds: float, base: datetime = T0) -> datetime:
    return base + timedelta(seconds=seconds)


def feed(translator: Translator, *timed_frames: tuple[float, bytes], base: datetime = T0) -> list[dict]:
    out = []
    for seconds, frame in timed_frames:
        record = parse_frame(frame)
        assert record is not None
        out += translator.translate(record, at(seconds, base)).events
    return out


def parsed(events: list[dict]) -> list[MeteringEvent]:
    results = [parse_event(e) for e in events]
    assert all(isinstance(r, MeteringEvent) for r in results), results
    return results  # type: ignore[return-value]


def month_usage(events: list[dict], account: str = "acme", month: str = "2026-11"):
    return usage_report(account, Month.parse(month), daily_usage(parsed(events)).values())


# --- records ---------------------------------------------------------------------------------


def test_a_conn_record_with_a_route_and_ttl_is_a_connected_record():
    assert parse_frame(OPEN) == ConnRecord(H, "condure:0-0-1", "chat", unavailable=False, kind="http", ttl_s=120)


def test_an_unavailable_conn_record_is_a_disconnect_without_type_or_ttl():
    assert parse_frame(GONE) == ConnRecord(H, "condure:0-0-1", None, unavailable=True)


def test_message_and_report_records_keep_the_fields_billing_uses():
    assert parse_frame(MESSAGE) == MessageRecord(H, "chat-room", "i1", 2, "http-stream")
    assert parse_frame(REPORT) == ReportRecord(H, None, received=3, minutes=0, connections=2)


@pytest.mark.parametrize(
    "frame",
    [b'sub J{"channel":"news","from":"h","mode":"stream","ttl":60}', b'activity J{"count":1,"from":"h"}',
     b'counts J{"from":"h","requests-received":3}'],
)  # fmt: skip
def test_records_billing_does_not_use_are_ignored(frame):
    assert parse_frame(frame) is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"conn", "'<type> <format><body>'"),
        (b"conn T51:2:id,1:1,", "stats_format=json"),
        (b"conn J{nope", "not valid JSON"),
        (b"conn J[1]", "not a JSON object"),
        (b'conn J{"id":"c","type":"http","ttl":1}', "'from' must be"),
        (b'conn J{"from":"h","id":"c","type":"tcp","ttl":1}', "'http' or 'ws'"),
        (b'conn J{"from":"h","id":"c","type":"ws","ttl":-1}', "'ttl' must be a non-negative integer"),
        (b'conn J{"from":"h","id":"c","unavailable":"yes"}', "'unavailable' must be a boolean"),
        (b'message J{"from":"h","channel":"c","count":true,"transport":"ws-message"}', "'count'"),
        (b'message J{"from":"h","channel":"","count":1,"transport":"ws-message"}', "'channel'"),
        (b'report J{"from":"h","received":1.5}', "'received'"),
    ],
)
def test_a_record_that_breaks_pushpins_schema_is_a_bad_record_with_its_reason(frame, reason):
    with pytest.raises(BadRecord, match=reason.replace("(", r"\(").replace("[", r"\[")):
        parse_frame(frame)


# --- route map -------------------------------------------------------------------------------


def test_a_toml_route_map_maps_routes_prefixes_and_the_default(tmp_path):
    path = tmp_path / "routes.toml"
    path.write_text(
        '[default]\naccount_id = "acme"\nservice_id = "svc-main"\n'
        '[[routes]]\nroute = "chat"\naccount_id = "acme"\nservice_id = "svc-chat"\nchannel_prefix = "chat-"\n'
        '[[routes]]\nroute = "chat-vip"\naccount_id = "acme"\nservice_id = "svc-vip"\nchannel_prefix = "chat-vip-"\n'
    )
    routes = load_route_map(path)
    assert routes.for_route("chat") == CHAT and routes.for_route(None) == MAIN
    assert routes.for_route("unknown") is None  # never guessed into the default account
    assert routes.for_channel("chat-vip-1") == Subject("acme", "svc-vip")  # the longest prefix wins
    assert routes.for_channel("chat-1") == CHAT and routes.for_channel("news") == MAIN
    assert routes.for_published() == MAIN


def test_a_json_route_map_without_default_maps_only_its_routes(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": [{"route": "chat", "account_id": "acme", "service_id": "svc-chat"}]}))
    routes = load_route_map(path)
    assert routes.for_route("chat") == CHAT
    assert routes.for_route(None) is None and routes.for_channel("x") is None and routes.for_published() is None


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "must be an object"),
        ({}, "maps nothing"),
        ({"routes": {}}, "'routes' must be a list"),
        ({"routes": [{"route": "a", "account_id": "x"}]}, r"routes\[0\]: 'service_id'"),
        ({"routes": [{"route": "a", "account_id": "x", "service_id": "s"}] * 2}, "listed twice"),
        ({"default": {"account_id": "", "service_id": "s"}}, "default: 'account_id'"),
        ({"default": "acme"}, "default: 'account_id'"),
    ],
)
def test_an_invalid_route_map_is_refused_with_the_problem(doc, reason):
    with pytest.raises(RouteMapError, match=reason):
        parse_route_map(doc)


def test_an_unreadable_or_malformed_route_map_file_is_refused(tmp_path):
    with pytest.raises(RouteMapError, match="cannot read"):
        load_route_map(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[default\n")
    with pytest.raises(RouteMapError, match="not valid"):
        load_route_map(tmp_path / "bad.toml")


# --- translation -----------------------------------------------------------------------------


def test_first_sight_opens_a_refresh_is_alive_and_unavailable_closes_the_connection():
    events = parsed(feed(Translator("pp1", ROUTES), (0, OPEN), (90, REFRESH), (100, GONE)))
    assert [e.type for e in events] == [
        EventType.CONNECTION_OPEN,
        EventType.CONNECTION_ALIVE,
        EventType.CONNECTION_CLOSE,
    ]
    # Pushpin names the route only on the first record: the later ones still bill the route's service.
    assert {(e.account_id, e.service_id, e.connection_id, e.source) for e in events} == {
        ("acme", "svc-chat", f"{H}/condure:0-0-1", "pushpin/pp1")
    }
    assert events[0].transport == "http-stream"
    assert (events[2].bytes_out, events[2].bytes_in, events[2].reason) == (0, 0, "disconnected")


def test_a_websocket_connection_on_the_global_route_bills_the_default_service():
    frame = b'conn J{"from":"h","id":"w1","ttl":120,"type":"ws"}'
    (event,) = parsed(feed(Translator("pp1", ROUTES), (0, frame)))
    assert (event.transport, event.service_id) == ("websocket", "svc-main")


def test_a_connection_of_100_seconds_from_23_59_utc_on_the_months_last_day_bills_a_minute_in_each_month():
    events = feed(Translator("pp1", ROUTES), (0, OPEN), (90, REFRESH), (100, GONE), base=MONTH_END)
    assert billable_minutes(100_000_000) == 2
    assert month_usage(events).connection_minutes == 1  # minute 0 begins 23:59:00 in November
    assert month_usage(events, month="2026-12").connection_minutes == 1  # minute 1 begins 00:00:00 in December


def test_a_lost_disconnect_bills_only_to_the_last_refresh():
    # Refreshes at 90 s and 180 s, then the disconnect (at ~200 s) is lost on the PUB socket.
    translator = Translator("pp1", ROUTES)
    events = feed(translator, (0, OPEN), (90, REFRESH), (180, REFRESH))
    assert translator.expire(at(301)) == 1  # ttl 120 s lapsed: forgotten, no close invented
    assert month_usage(events).connection_minutes == 3  # ceil(180 s / 60 s), not the 6 minutes to 301 s


def test_a_connection_is_kept_while_its_ttl_has_not_lapsed():
    translator = Translator("pp1", ROUTES)
    feed(translator, (0, OPEN))
    assert translator.expire(at(120)) == 0 and translator.open_connections == 1
    assert translator.expire(at(120.000001)) == 1 and translator.open_connections == 0


def test_a_connection_seen_again_after_its_state_was_lost_opens_with_the_same_id_so_the_pipeline_keeps_the_first():
    only_chat = RouteMap(routes={"chat": CHAT})  # every route has an id: a route-less record maps to nothing
    first = feed(Translator("pp1", only_chat), (0, OPEN))
    reopened = feed(Translator("pp1", ROUTES), (0, OPEN), (90, REFRESH))
    assert reopened[0]["id"] == first[0]["id"]
    # Without the remembered route a refresh cannot be placed: it is skipped, never billed to another service.
    assert feed(Translator("pp1", only_chat), (90, REFRESH), (150, GONE)) == []


def test_a_restored_translator_bills_a_connections_later_records_to_its_routes_service():
    before = Translator("pp1", ROUTES)
    first = feed(before, (0, OPEN))
    opened, forgotten = before.take_changes()
    assert ([c.subject for c in opened], forgotten, before.take_changes()) == ([CHAT], [], ([], []))
    after = Translator("pp1", ROUTES)
    after.restore(opened, at(600))  # the adapter was down far longer than the ttl
    assert after.expire(at(720)) == 0  # a fresh ttl from the restart
    later = feed(after, (690, REFRESH), (750, GONE))
    assert {e["data"]["service_id"] for e in later} == {"svc-chat"}
    assert month_usage(first + later).connection_minutes == 13  # 0 s to 750 s
    assert after.take_changes() == ([], [("pushpin-handler_30527", "condure:0-0-1")])


def test_the_same_records_at_the_same_instants_give_the_same_event_ids():
    frames = ((0, OPEN), (90, REFRESH), (95, MESSAGE), (96, REPORT), (100, GONE))
    once, again = feed(Translator("pp1", ROUTES), *frames), feed(Translator("pp1", ROUTES), *frames)
    assert [e["id"] for e in once] == [e["id"] for e in again]
    assert len({e["id"] for e in once}) == len(once)


def test_a_route_the_map_does_not_list_is_skipped_with_its_reason():
    frame = b'conn J{"from":"h","id":"c","route":"other","ttl":120,"type":"http"}'
    translation = Translator("pp1", ROUTES).translate(parse_frame(frame), T0)  # type: ignore[arg-type]
    assert (translation.events, translation.skipped) == ([], "unmapped route 'other'")


def test_a_message_record_is_delivered_count_for_the_channels_service():
    (event,) = parsed(feed(Translator("pp1", ROUTES), (5, MESSAGE)))
    assert (event.type, event.service_id, event.channel, event.count) == (
        EventType.MESSAGE_DELIVERED, "svc-chat", "chat-room", 2,
    )  # fmt: skip


def test_a_message_relayed_to_nobody_or_on_an_unmapped_channel_gives_no_event():
    nobody = b'message J{"channel":"news","count":0,"from":"h","transport":"ws-message"}'
    assert Translator("pp1", ROUTES).translate(parse_frame(nobody), T0).skipped == "no deliveries"  # type: ignore[arg-type]
    only_chat = RouteMap(routes={"chat": CHAT}, prefixes=(("chat-", CHAT),))
    translation = Translator("pp1", only_chat).translate(parse_frame(nobody), T0)  # type: ignore[arg-type]
    assert translation.skipped == "unmapped channel 'news'"


def test_the_global_routes_report_gives_the_published_count_to_the_default_service():
    (event,) = parsed(feed(Translator("pp1", ROUTES), (10, REPORT)))
    assert (event.type, event.service_id, event.channel, event.count) == (
        EventType.MESSAGE_PUBLISHED, "svc-main", "*", 3,
    )  # fmt: skip
    usage = month_usage(feed(Translator("pp1", ROUTES), (10, REPORT), (11, MESSAGE)))
    assert (usage.messages_published, usage.messages_delivered, usage.messages) == (3, 2, 5)


def test_per_route_and_empty_reports_give_no_event_and_no_default_means_no_published_count():
    routed = b'report J{"from":"h","route":"chat","received":0,"minutes":1}'
    empty = b'report J{"from":"h","received":0}'
    translator = Translator("pp1", ROUTES)
    assert feed(translator, (1, routed), (2, empty)) == []
    no_default = Translator("pp1", RouteMap(routes={"chat": CHAT}))
    assert no_default.translate(parse_frame(REPORT), T0).skipped.startswith("published counts need")  # type: ignore


def test_long_pushpin_ids_are_shortened_to_the_contracts_256_characters():
    record = ConnRecord("h" * 150, "c" * 150, None, unavailable=True)
    assert len(connection_id_for(record)) <= 256
    assert connection_id_for(record) != connection_id_for(ConnRecord("h" * 150, "c" * 149 + "d", None, True))


def test_receipt_stamps_strictly_increase_even_when_the_clock_repeats_or_steps_back():
    stamp = MonotonicStamp()
    assert [stamp(T0), stamp(T0), stamp(T0 - timedelta(seconds=1))] == [
        T0, T0 + timedelta(microseconds=1), T0 + timedelta(microseconds=2),
    ]  # fmt: skip


# --- the adapter's handling of received messages (no socket) --------------------------------


class ListStore:
    def __init__(self):
        self.payloads: list[str] = []

    def save(self, payloads, _opened, _forgotten):
        self.payloads += payloads


def test_the_adapter_writes_good_records_events_and_counts_bad_ignored_and_skipped_ones():
    store = ListStore()
    adapter = StatsAdapter("ipc://unused", Translator("pp1", ROUTES), store, clock=lambda: T0)  # type: ignore[arg-type]
    unmapped = b'conn J{"from":"h","id":"c","route":"other","ttl":120,"type":"http"}'
    adapter.handle([[OPEN], [b"conn J{"], [b"sub J{}"], [unmapped], [MESSAGE, b"extra"], [MESSAGE]])
    assert (adapter.records, adapter.events, adapter.bad, adapter.skipped) == (6, 2, 2, 1)
    assert [json.loads(p)["type"] for p in store.payloads] == ["fanout.connection.open", "fanout.message.delivered"]
    times = [json.loads(p)["time"] for p in store.payloads]
    assert times == ["2026-11-28T04:00:00.000000Z", "2026-11-28T04:00:00.000005Z"]  # one stamp per message


def test_the_adapter_store_keeps_open_connections_with_their_events_across_a_restart(tmp_path):
    path = tmp_path / "pushpin-outbox-pp1.sqlite"
    first = StatsAdapter("ipc://unused", Translator("pp1", ROUTES), AdapterStore(path), clock=lambda: T0)
    first.handle([[OPEN]])
    store = AdapterStore(path)
    (saved,) = store.open_connections()
    assert (saved.subject, saved.last_seen_us, saved.ttl_us) == (CHAT, 1_795_838_400_000_000, 120_000_000)
    translator = Translator("pp1", ROUTES)
    translator.restore(store.open_connections(), T0)
    StatsAdapter("ipc://unused", translator, store, clock=lambda: at(90)).handle([[REFRESH], [GONE]])
    events = [json.loads(p) for p in store.payloads(store.seal_batch("b1", 10, 0) and "b1")]
    assert [(e["type"], e["data"]["service_id"]) for e in events] == [
        ("fanout.connection.open", "svc-chat"), ("fanout.connection.alive", "svc-chat"),
        ("fanout.connection.close", "svc-chat"),
    ]  # fmt: skip
    assert store.open_connections() == []


def test_an_invalid_stats_socket_address_is_an_adapter_error_naming_it(tmp_path):
    adapter = StatsAdapter("not-a-zmq-address", Translator("pp1", ROUTES), AdapterStore(tmp_path / "o.sqlite"))
    with pytest.raises(AdapterError, match="'not-a-zmq-address'"):
        adapter.run(threading.Event())


def test_the_command_refuses_an_invalid_route_map_before_starting(tmp_path):
    path = tmp_path / "map.json"
    path.write_text('{"routes": 1}')
    result = CliRunner().invoke(main, ["pushpin-stats", "--stats-spec", "ipc:///nowhere", "--route-map", str(path)])
    assert (result.exit_code, result.output.strip()) == (1, "Error: 'routes' must be a list")
