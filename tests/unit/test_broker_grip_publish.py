"""Publish bodies: DESIGN.md's nested formats and gripcontrol's top-level formats, and every refusal."""

import base64
import json
import re

import pytest
from gripcontrol import HttpResponseFormat as GcResponse
from gripcontrol import HttpStreamFormat as GcStream
from gripcontrol import WebSocketMessageFormat as GcWs
from pubcontrol import Item as GcItem

from broker.exceptions import PublishError
from broker.grip.publish import HttpResponseFormat, HttpStreamFormat, WsMessageFormat, parse_publish_body


def body(*items):
    return json.dumps({"items": list(items)}).encode()


def test_an_item_exported_by_gripcontrol_is_parsed_with_all_its_formats():
    exported = GcItem([GcStream("s"), GcWs("w"), GcResponse(code=201, body="r")], "id-2", "id-1").export()
    (item,) = parse_publish_body(body({"channel": "c", **exported}))
    assert (item.channel, item.id, item.prev_id) == ("c", "id-2", "id-1")
    assert item.format_for("sse") == item.format_for("http-stream") == HttpStreamFormat(b"s")
    assert item.format_for("websocket") == WsMessageFormat(b"w")
    assert item.format_for("long-poll") == HttpResponseFormat(201, "", (), b"r")


def test_no_seq_is_read_and_defaults_to_false():
    (plain, no_seq) = parse_publish_body(
        body({"channel": "c", "http-stream": {"content": "x"}}),
    ) + parse_publish_body(body({"channel": "c", "no-seq": True, "http-stream": {"content": "x"}}))
    assert (plain.no_seq, no_seq.no_seq) == (False, True)


def test_formats_nested_under_formats_as_design_md_shows_are_parsed():
    (item,) = parse_publish_body(
        body({"channel": "c", "formats": {"ws-message": {"content-bin": base64.b64encode(b"\x00").decode()}}})
    )
    assert item.format_for("websocket") == WsMessageFormat(b"\x00", binary=True)
    assert item.format_for("long-poll") is None


def test_close_actions_are_parsed_for_streams_and_sockets():
    (item,) = parse_publish_body(
        body(
            {
                "channel": "c",
                "http-stream": {"action": "close"},
                "ws-message": {"action": "close", "code": 4000, "reason": "bye"},
            }
        )
    )
    assert item.format_for("http-stream") == HttpStreamFormat(close=True)
    assert item.format_for("websocket") == WsMessageFormat(close=True, code=4000, reason="bye")


def test_the_item_size_is_its_largest_payload():
    (item,) = parse_publish_body(
        body({"channel": "c", "http-stream": {"content": "abc"}, "http-response": {"body": "a"}})
    )
    assert item.size == 3


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff", "not valid JSON"),
        (b"[]", '"items" list'),
        (body(1), "items[0] must be an object"),
        (body({"channel": 5, "http-stream": {"content": "x"}}), "channel must be a non-empty string"),
        (body({"channel": "c", "id": 5, "http-stream": {"content": "x"}}), "items[0].id must be a string"),
        (body({"channel": "c", "no-seq": "yes", "http-stream": {"content": "x"}}), "no-seq must be true or false"),
        (body({"channel": "c", "formats": []}), "formats must be an object"),
        (body({"channel": "c"}), "has no formats"),
        (
            body({"channel": "c", "formats": {"http-stream": {"content": "x"}}, "http-stream": {"content": "y"}}),
            "both in formats",
        ),
        (body({"channel": "c", "http-stream": 1}), "http-stream must be an object"),
        (
            body({"channel": "c", "http-stream": {"action": "explode"}}),
            "action must be one of send, close, hint, refresh",
        ),
        (body({"channel": "c", "http-stream": {}}), "needs content or content-bin"),
        (body({"channel": "c", "http-stream": {"content": 1}}), "content must be a string"),
        (body({"channel": "c", "http-stream": {"content-bin": 1}}), "base64 string"),
        (body({"channel": "c", "http-stream": {"content-bin": "!"}}), "not valid base64"),
        (body({"channel": "c", "http-response": {"code": 42}}), "HTTP status code"),
        (body({"channel": "c", "http-response": {"reason": 1}}), "reason must be a string"),
        (body({"channel": "c", "http-response": {"headers": {"a": 1}}}), "map names to strings"),
        (body({"channel": "c", "ws-message": {"action": "close", "code": 7}}), "WebSocket close code"),
    ],
)
def test_invalid_publish_bodies_are_refused_with_the_reason(raw, reason):
    with pytest.raises(PublishError, match=re.escape(reason)):
        parse_publish_body(raw)


def test_one_invalid_item_refuses_the_whole_publish():
    with pytest.raises(PublishError, match=r"items\[1\]"):
        parse_publish_body(body({"channel": "a", "http-stream": {"content": "x"}}, {"channel": ""}))


def test_an_empty_item_list_publishes_nothing_and_unknown_formats_are_ignored_as_pushpin_does():
    assert parse_publish_body(b'{"items": []}') == ()
    (item,) = parse_publish_body(
        body({"channel": "c", "formats": {"carrier-pigeon": {}, "http-stream": {"content": "x"}}})
    )
    assert list(item.formats) == ["http-stream"]
    (only_unknown,) = parse_publish_body(body({"channel": "c", "formats": {"carrier-pigeon": {}}}))
    assert only_unknown.formats == {} and only_unknown.size == 0


def test_hint_and_refresh_actions_and_ws_message_types_are_read_as_pushpin_reads_them():
    def one(fmt):
        return parse_publish_body(json.dumps({"items": [{"channel": "c", **fmt}]}).encode())[0].formats

    assert one({"http-stream": {"action": "hint"}})["http-stream"] == HttpStreamFormat(hint=True)
    for name in ("http-stream", "ws-message"):
        with pytest.raises(PublishError, match="refresh"):
            one({name: {"action": "refresh"}})
    for action in ("hint", "refresh"):
        assert one({"http-response": {"action": action}})["http-response"] == HttpResponseFormat(hint=True)
    assert one({"ws-message": {"action": "hint"}})["ws-message"] == WsMessageFormat(hint=True)
    assert one({"ws-message": {"type": "binary", "content": "ab"}})["ws-message"] == WsMessageFormat(b"ab", binary=True)
    assert one({"ws-message": {"type": "text", "content-bin": "YWI="}})["ws-message"] == WsMessageFormat(b"ab")
    assert one({"ws-message": {"type": "ping"}})["ws-message"] == WsMessageFormat(frame="ping")
    with pytest.raises(PublishError, match="type must be one of"):
        one({"ws-message": {"type": "smoke", "content": "x"}})
