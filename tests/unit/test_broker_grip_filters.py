"""Subscription filters as Pushpin applies them (broker.grip.filters), and the hub applying them."""

import json

import pytest

from broker.fanout.hub import Hub
from broker.grip.filters import Unrenderable, apply, build_id, ids_at_item, proxy_content, substitute
from broker.grip.instructions import Channel, instruction_from_body, instruction_from_headers, parse_channels
from broker.grip.publish import HttpResponseFormat, HttpStreamFormat, WsMessageFormat, parse_publish_body
from broker.grip.wsevents import Control, parse_control
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection

SVC = ServiceConfig("s1", "a1", "http://o", ("t",), "k", True)
TEXT = WsMessageFormat(b"hi %(user)s")


@pytest.mark.parametrize(
    ("filters", "item_meta", "sub_meta", "channels", "sent"),
    [
        (("skip-self",), {"sender": "alice"}, {"user": "alice"}, set(), False),
        (("skip-self",), {"sender": "alice"}, {"user": "bob"}, set(), True),
        (("skip-self",), {"sender": "alice"}, None, set(), True),  # no user: nothing to skip
        (("skip-self",), None, {"user": "alice"}, set(), True),
        (("skip-users",), {"skip_users": "carol, alice"}, {"user": "alice"}, set(), False),
        (("skip-users",), {"skip_users": "carol,alicex"}, {"user": "alice"}, set(), True),
        (("require-sub",), {"require_sub": "vip"}, None, {"c", "vip"}, True),
        (("require-sub",), {"require_sub": "vip"}, None, {"c"}, False),
        (("require-sub",), {}, None, {"c"}, True),
    ],
)
def test_drop_filters_judge_the_items_meta_against_the_subscribers(filters, item_meta, sub_meta, channels, sent):
    assert (apply(filters, TEXT, item_meta, sub_meta, channels) is TEXT) is sent
    if not sent:
        assert apply(filters, TEXT, item_meta, sub_meta, channels) is None


def test_var_subst_rewrites_each_formats_content_and_flags_what_it_cannot_render():
    meta = {"user": "bob"}
    assert apply(("var-subst",), TEXT, None, meta, set()) == WsMessageFormat(b"hi bob")
    assert apply(("var-subst",), HttpStreamFormat(b"%(user)s\n"), None, meta, set()) == HttpStreamFormat(b"bob\n")
    response = apply(("var-subst",), HttpResponseFormat(body=b"to %(user)s"), None, meta, set())
    assert isinstance(response, HttpResponseFormat) and response.body == b"to bob"
    assert apply(("var-subst",), TEXT, None, {}, set()) == Unrenderable("var-subst")
    assert apply(("var-subst",), WsMessageFormat(close=True), None, {}, set()) == WsMessageFormat(close=True)
    hint = HttpStreamFormat(hint=True)  # a hint has no content to render, as in Pushpin
    assert apply(("var-subst", "build-id"), hint, None, {}, set()) is hint


@pytest.mark.parametrize(
    ("content", "out"),
    [(b"plain", b"plain"), (b"100%%", b"100%"), (b"%(a\\)b)s", b"A"), (b"%(user)s%(user)s", b"bobbob"),
     (b"%", None), (b"%d", None), (b"%(user", None), (b"%(user)d", None), (b"%(nobody)s", None)],
)  # fmt: skip
def test_substitute_follows_pushpins_format(content, out):
    assert substitute(content, {"user": "bob", "a)b": "A"}) == out


def test_filters_are_read_from_grip_channel_grip_instruct_and_subscribe():
    assert parse_channels(["a; filter=skip-self; filter=var-subst, b"]) == (
        Channel("a", None, ("skip-self", "var-subst")),
        Channel("b"),
    )
    body = {"hold": {"channels": [{"name": "a", "filters": ["skip-users"]}]}}
    hold = instruction_from_body(json.dumps(body).encode()).hold
    assert hold is not None and hold.channels == (Channel("a", None, ("skip-users",)),)
    headers = (("Grip-Hold", "stream"), ("Grip-Channel", "a"), ("Grip-Set-Meta", 'user=alice, role="x y"'))
    held = instruction_from_headers(200, "OK", headers, b"").hold
    assert held is not None and held.meta == (("user", "alice"), ("role", "x y"))
    control = parse_control(b'c:{"type": "subscribe", "channel": "a", "filters": ["skip-self"]}')
    assert control == Control("subscribe", channel="a", filters=("skip-self",))


def test_publish_item_meta_must_be_an_object_of_strings():
    item = parse_publish_body(
        b'{"items": [{"channel": "a", "meta": {"sender": "x"}, "http-stream": {"content": "c"}}]}'
    )
    assert item[0].meta == {"sender": "x"}
    with pytest.raises(Exception, match="meta"):
        parse_publish_body(b'{"items": [{"channel": "a", "meta": {"n": 1}, "http-stream": {"content": "c"}}]}')


def test_the_hub_queues_nothing_a_filter_drops_and_forgets_filters_and_meta_on_leave():
    hub = Hub()
    alice, bob, plain = (Connection(n, SVC, "websocket", 10) for n in ("alice", "bob", "plain"))
    for conn in (alice, bob):
        hub.set_meta(conn, {"user": conn.id})
        hub.subscribe(conn, "c", ("skip-self",))
    hub.subscribe(plain, "c")
    items = parse_publish_body(json.dumps({"items": [
        {"channel": "c", "meta": {"sender": "alice"}, "ws-message": {"content": "from alice"}}]}).encode())  # fmt: skip
    assert hub.deliver("s1", items) == 2
    assert [len(c.drain()) for c in (alice, bob, plain)] == [0, 1, 1]
    hub.subscribe(alice, "c")  # subscribed again without filters
    assert hub.deliver("s1", items) == 3
    for conn in (alice, bob, plain):
        hub.leave(conn)
    assert hub._filters == {} and hub._meta == {}


@pytest.mark.parametrize(
    ("content", "meta", "ids", "out"),
    [
        (b"id=%I", {"id_format": "%(c)s"}, {"c": "7"}, b"id=7"),
        (b"id=%I", {"id_format": "v%(c)s.%(d)s%%"}, {"c": "7", "d": "8"}, b"id=v7.8%"),
        (b"id=%I", {"id_format": "%(c)s", "id_encoding": "hex"}, {"c": "7"}, b"id=37"),
        (b"x=%(lit)I", {"id_format": "%(c)s"}, {}, b"x=lit"),  # a literal id needs no channel
        (b"plain", {"id_format": "%(c)s"}, {"c": "7"}, b"plain"),
        (b"id=%I", {"id_format": "%(c)s"}, {}, None),  # no channels: no id to put there (a WebSocket in 1.36)
        (b"id=%I", {"id_format": "%(c)s"}, {"c": None}, None),  # a channel without a prev-id
        (b"id=%I", {"id_format": "%(other)s"}, {"c": "7"}, None),
        (b"plain", {}, {"c": "7"}, None),  # no id_format: build-id renders nothing, even plain content
        (b"id=%I", {"id_format": "%(c)s", "id_encoding": "base64"}, {"c": "7"}, None),
        (b"%(c)s", {"id_format": "%(c)s"}, {"c": "7"}, None),  # only I directives
        (b"100%%", {"id_format": "%(c)s"}, {"c": "7"}, b"100%"),
    ],
)
def test_build_id_renders_the_id_as_pushpins_build_id_filter(content, meta, ids, out):
    assert build_id(content, meta, ids) == out


def test_build_id_sees_the_items_own_channel_at_the_items_id_and_flags_what_it_cannot_render():
    meta = {"id_format": "%(c)s/%(d)s"}
    ids = ids_at_item({"c": "1", "d": "5", "e": None}, "c", "2")
    assert ids == {"c": "2", "d": "5", "e": None} and ids_at_item({"c": None}, "c", "2") == {"c": None}
    sent = apply(("build-id",), HttpStreamFormat(b"at %I\n"), None, meta, {"c", "d"}, {"c": "2", "d": "5"})
    assert sent == HttpStreamFormat(b"at 2/5\n")
    assert apply(("build-id",), HttpStreamFormat(b"at %I\n"), None, meta, {"c"}) == Unrenderable("build-id")
    assert apply(("skip-self", "build-id"), TEXT, {"sender": "bob"}, {"user": "bob"}, set()) is None  # dropped first


def test_proxy_content_applies_build_id_to_the_origins_own_body_without_prev_ids():
    meta = {"id_format": "%(c)s"}
    assert proxy_content(frozenset({"build-id"}), b"first %(x)I", meta) == b"first x"
    assert proxy_content(frozenset({"build-id"}), b"first %I", meta) is None
    assert proxy_content(frozenset({"build-id"}), b"", {}) == b""  # nothing to render
    assert proxy_content(frozenset({"var-subst"}), b"%I", {}) == b"%I"  # var-subst rewrites published content only


def test_the_hub_renders_build_id_with_each_holds_prev_ids_and_forgets_them_on_leave():
    hub = Hub()
    one, two = (Connection(n, SVC, "http-stream", 10) for n in ("one", "two"))
    for conn, prev in ((one, "1"), (two, None)):
        hub.set_meta(conn, {"id_format": "%(c)s"})
        hub.set_prev_ids(conn, {"c": prev})
        hub.subscribe(conn, "c", ("build-id",))
    items = parse_publish_body(json.dumps({"items": [
        {"channel": "c", "id": "2", "prev-id": "1", "http-stream": {"content": "id %I"}}]}).encode())  # fmt: skip
    assert hub.deliver("s1", items) == 2  # ``two`` tracks no prev-id: build-id cannot render, its hold ends on it
    assert [d.format.content for d in one.drain()] == [b"id 2"]  # type: ignore[union-attr]
    [failed] = two.drain()
    assert failed.unrenderable == "build-id" and failed.item.id == "2" and not failed.skipped
    for conn in (one, two):
        hub.leave(conn)
    assert hub._prev_ids == {}


def test_an_item_a_filter_drops_reaches_a_hold_that_follows_prev_ids_only_as_skipped():
    hub = Hub()
    follows_ids, plain = (Connection(n, SVC, "http-stream", 10) for n in ("follows", "plain"))
    for conn, prev in ((follows_ids, "1"), (plain, None)):
        hub.set_meta(conn, {"user": "alice"})
        hub.set_prev_ids(conn, {"c": prev})
        hub.subscribe(conn, "c", ("skip-self",))
    item = {"channel": "c", "id": "2", "prev-id": "1", "meta": {"sender": "alice"}, "http-stream": {"content": "x"}}
    items = parse_publish_body(json.dumps({"items": [item]}).encode())
    assert hub.deliver("s1", items) == 1
    [skipped] = follows_ids.drain()
    assert skipped.skipped and skipped.item.id == "2" and plain.drain() == []


def test_content_a_filter_cannot_render_ends_an_http_hold_but_is_dropped_for_a_websocket():
    """Pushpin 1.36: a stream or long-poll gets a "filter error" (the hold ends), a WebSocket nothing."""
    hub = Hub()
    conns = [Connection(t, SVC, t, 10) for t in ("http-stream", "long-poll", "websocket")]
    for conn in conns:
        hub.subscribe(conn, "c", ("var-subst",))
    item = {"channel": "c", "formats": {f: {"content": "%(x)s"} for f in ("http-stream", "ws-message")}
            | {"http-response": {"body": "%(x)s"}}}  # fmt: skip
    assert hub.deliver("s1", parse_publish_body(json.dumps({"items": [item]}).encode())) == 2
    stream, poll, socket = (conn.drain() for conn in conns)
    assert [d.unrenderable for d in stream + poll] == ["var-subst", "var-subst"] and socket == []
