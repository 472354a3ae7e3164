"""WebSocket-over-HTTP bodies and control messages, checked against gripcontrol's own encoder and decoder."""

import logging

import pytest
from gripcontrol import WebSocketEvent, decode_websocket_events, encode_websocket_events, websocket_control_message

from broker.exceptions import WsEventsError
from broker.grip.wsevents import (
    Control,
    WsEvent,
    close_code,
    close_event,
    control_name,
    decode_events,
    encode_events,
    grip_message_prefix,
    parse_control,
)
from broker.transports.ignored import forget, ignored

ALL_SEVEN = [WsEvent("OPEN"), WsEvent("TEXT", "héllo".encode()), WsEvent("BINARY", b"\x00\r\n\x01"), WsEvent("PING"),
             WsEvent("PONG", b"p"), close_event(1001), WsEvent("DISCONNECT")]  # fmt: skip


def test_all_seven_event_types_round_trip():
    assert decode_events(encode_events(ALL_SEVEN)) == ALL_SEVEN


def test_our_encoding_is_what_gripcontrol_decodes_and_the_reverse():
    decoded = decode_websocket_events(encode_events(ALL_SEVEN))
    assert [(e.type, e.content) for e in decoded] == [(e.type, e.content) for e in ALL_SEVEN]
    theirs = encode_websocket_events([WebSocketEvent("TEXT", b"m:hi"), WebSocketEvent("CLOSE", b"\x03\xe8")])
    assert decode_events(theirs) == [WsEvent("TEXT", b"m:hi"), WsEvent("CLOSE", b"\x03\xe8")]


def test_close_codes_are_two_big_endian_bytes():
    assert close_code(close_event(4001)) == 4001
    assert close_code(WsEvent("CLOSE")) is None
    assert close_event(None) == WsEvent("CLOSE")


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"OPEN", "without CRLF"), (b"SHOUT\r\n", "unknown event type"), (b"TEXT zz\r\nab\r\n", "bad content length"),
     (b"TEXT 5\r\nab\r\n", "shorter than its length")],
)  # fmt: skip
def test_malformed_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(WsEventsError, match=reason):
        decode_events(body)


@pytest.mark.parametrize(
    ("header", "prefix"),
    [(None, None), ("permessage-deflate", None), ("grip", b"m:"), ('grip; message-prefix=""', b""),
     ("x, grip; message-prefix=msg", b"msg")],
)  # fmt: skip
def test_the_grip_extension_enables_control_messages_with_its_message_prefix(header, prefix):
    assert grip_message_prefix(header) == prefix


def test_control_messages_made_by_gripcontrol_are_parsed():
    def control(kind, **args):
        return parse_control(b"c:" + websocket_control_message(kind, args or None).encode())

    assert control("subscribe", channel="a") == Control("subscribe", channel="a")
    assert control("unsubscribe", channel="a") == Control("unsubscribe", channel="a")
    assert control("detach") == Control("detach")
    assert control("keep-alive", content="ka", timeout=10) == Control("keep-alive", content=b"ka", timeout_s=10)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"c:{", "not JSON"), (b'c:{"type": "dance"}', "type must be one of"),
     (b'c:{"type": "subscribe"}', "needs a channel"),
     (b'c:{"type": "keep-alive", "content": "k", "timeout": -1}', "non-negative integer")],
)  # fmt: skip
def test_invalid_control_messages_are_refused(content, reason):
    with pytest.raises(WsEventsError, match=reason):
        parse_control(content)


def test_set_meta_and_pushpins_other_control_messages_are_parsed():
    assert parse_control(b'c:{"type": "set-meta", "name": "User", "value": "bob"}') == Control(
        "set-meta", name="user", value="bob"
    )
    assert parse_control(b'c:{"type": "set-meta", "name": "user"}') == Control("set-meta", name="user")
    for kind in ("session", "send-delayed", "flush-delayed"):
        assert parse_control(b'c:{"type": "%s"}' % kind.encode()).type == kind


@pytest.mark.parametrize(
    "content",
    [b'c:{"type": "set-meta"}', b'c:{"type": "set-meta", "name": "a b"}',
     b'c:{"type": "set-meta", "name": "a", "value": 1}', b'c:{"type": "set-meta", "name": "a", "value": "x\\r\\ny"}',
     b'c:["subscribe"]', b'c:{"type": 7}', b"c:" + b"[" * 100_000, b"c:\xff"],
)  # fmt: skip
def test_malformed_control_messages_are_refused_with_a_broker_error_only(content):
    with pytest.raises(WsEventsError):
        parse_control(content)
    assert control_name(content)


def test_an_ignored_thing_is_logged_once_per_service_and_name(caplog):
    forget()
    with caplog.at_level(logging.WARNING, logger="broker.grip"):
        for service in ("s1", "s1", "s2"):
            ignored(service, "a control message", "'dance'")
        ignored("s1", "a control message", "'tango'")
    assert [r.getMessage() for r in caplog.records] == [
        "service s1: origin sent a control message 'dance', ignored",
        "service s2: origin sent a control message 'dance', ignored",
        "service s1: origin sent a control message 'tango', ignored",
    ]


def test_keep_alive_and_send_delayed_are_read_as_pushpin_reads_them():
    assert parse_control(b'c:{"type": "keep-alive"}') == Control("keep-alive")  # no content: off
    assert parse_control(b'c:{"type": "keep-alive", "content": "k", "mode": "interval"}') == Control(
        "keep-alive", content=b"k", timeout_s=55, interval=True
    )
    assert parse_control(b'c:{"type": "send-delayed", "content-bin": "AAE="}') == Control(
        "send-delayed", content=b"\0\1", timeout_s=1, message_type="binary"
    )
    assert parse_control(b'c:{"type": "flush-delayed"}') == Control("flush-delayed")
    with pytest.raises(WsEventsError, match="message-type"):
        parse_control(b'c:{"type": "send-delayed", "content": "x", "message-type": "smoke"}')
