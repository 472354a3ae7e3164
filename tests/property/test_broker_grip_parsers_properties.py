"""Fuzzing the parsers of what an origin sends (issue 12): GRIP headers, grip-instruct bodies,
WebSocket-over-HTTP bodies and control messages. Whatever the origin sends, a parser raises only
the broker's own error (answered 502, or ignored for a control message), and a WebSocket whose
origin sends any control message is never closed with 1011."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exceptions import BrokerError
from broker.fanout.hub import Hub
from broker.grip import instructions, wsevents
from broker.services.model import ServiceConfig
from broker.transports import websocket
from broker.transports.connection import Connection
from broker.transports.held_request import HoldContext
from broker.transports.websocket import WsSession

SVC = ServiceConfig("s1", "a1", "http://o", ("t",), "k", True)
GRIP_NAMES = [*sorted(instructions.KNOWN_GRIP_HEADERS), "Grip-Unheard-Of", "Content-Type", "grip-STATUS"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
control_docs = st.dictionaries(
    st.sampled_from(["type", "channel", "name", "value", "timeout", "content", "content-bin", "mode", "filters", "id"]),
    json_values | st.sampled_from(sorted(wsevents.CONTROL_TYPES)),
    max_size=5,
)
control_contents = st.one_of(
    control_docs.map(lambda doc: b"c:" + json.dumps(doc).encode()),
    st.binary(max_size=40).map(lambda raw: b"c:" + raw),
    json_values.map(lambda value: b"c:" + json.dumps(value).encode()),
)
header_values = st.one_of(st.text(max_size=30), st.sampled_from(["200", "304 Not Modified", "stream", "a; prev-id=1"]))


@settings(max_examples=300, deadline=None)
@given(content=control_contents)
def test_a_control_message_parses_or_raises_a_broker_error(content: bytes) -> None:
    try:
        wsevents.parse_control(content)
    except BrokerError:
        pass
    assert isinstance(wsevents.control_name(content), str)


@settings(max_examples=300, deadline=None)
@given(headers=st.lists(st.tuples(st.sampled_from(GRIP_NAMES), header_values), max_size=6), body=st.binary(max_size=40))
def test_grip_headers_parse_or_raise_a_broker_error(headers: list[tuple[str, str]], body: bytes) -> None:
    try:
        instructions.instruction_from_response(200, "OK", tuple(headers), body)
    except BrokerError:
        pass


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_grip_instruct_bodies_parse_or_raise_a_broker_error(doc: Any) -> None:
    try:
        instructions.instruction_from_body(json.dumps(doc).encode())
    except BrokerError:
        pass


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=60))
def test_websocket_events_bodies_decode_or_raise_a_broker_error(body: bytes) -> None:
    try:
        wsevents.decode_events(body)
    except BrokerError:
        pass


@settings(max_examples=200, deadline=None)
@given(contents=st.lists(control_contents, min_size=1, max_size=4))
def test_no_control_message_raises_out_of_the_handler_or_closes_with_1011(contents: list[bytes]) -> None:
    sent = asyncio.run(_apply_all(contents))
    assert not [m for m in sent if m["type"] == "websocket.close" and m.get("code") == 1011]


async def _apply_all(contents: list[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    hub = Hub()
    ctx = HoldContext(hub, meter=None)  # type: ignore[arg-type]  # control messages never meter
    conn = Connection("c1", SVC, "websocket", 10)
    session = WsSession(SVC, "/", None, [], conn, prefix=b"m:")  # type: ignore[arg-type]  # the origin is not asked
    await websocket._apply(ctx, session, [wsevents.WsEvent("TEXT", c) for c in contents], send)
    hub.leave(conn)
    return sent
