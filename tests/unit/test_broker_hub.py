"""Fan-out on one node: formats by transport, services kept apart, slow consumers dropped and counted."""

from broker.config import ServiceConfig
from broker.connection import Connection
from broker.hub import Hub
from broker.publish import parse_publish_body

SVC = ServiceConfig("s1", "a1", "http://o", ("t",), "k", True)
OTHER = ServiceConfig("s2", "a1", "http://o", ("t",), "k", True)


def items(*specs):
    return parse_publish_body(('{"items": [' + ",".join(specs) + "]}").encode())


STREAM_ITEM = '{"channel": "c", "http-stream": {"content": "x"}}'


def test_an_item_is_queued_only_to_transports_that_have_a_format_in_it():
    hub = Hub()
    sse, ws, poll = (Connection(t, SVC, t, 10) for t in ("sse", "websocket", "long-poll"))
    for conn in (sse, ws, poll):
        hub.subscribe(conn, "c")
    assert hub.deliver("s1", items(STREAM_ITEM)) == 1
    assert (sse.queue.qsize(), ws.queue.qsize(), poll.queue.qsize()) == (1, 0, 0)


def test_a_channel_of_one_service_never_reaches_another_services_clients():
    hub = Hub()
    mine, theirs = Connection("1", SVC, "sse", 10), Connection("2", OTHER, "sse", 10)
    hub.subscribe(mine, "c")
    hub.subscribe(theirs, "c")
    hub.deliver("s1", items(STREAM_ITEM))
    assert (mine.queue.qsize(), theirs.queue.qsize()) == (1, 0)


def test_a_full_queue_drops_deliveries_and_counts_them_as_dropped():
    hub = Hub()
    slow = Connection("1", SVC, "http-stream", 2)
    hub.subscribe(slow, "c")
    assert hub.deliver("s1", items(STREAM_ITEM, STREAM_ITEM, STREAM_ITEM)) == 2
    assert (slow.queue.qsize(), slow.dropped) == (2, 1)


def test_first_and_last_subscriber_of_a_channel_are_announced_once():
    hub = Hub()
    seen = []
    hub.on_first = lambda key: seen.append(("first", key))
    hub.on_last = lambda key: seen.append(("last", key))
    one, two = Connection("1", SVC, "sse", 1), Connection("2", SVC, "sse", 1)
    hub.subscribe(one, "c")
    hub.subscribe(two, "c")
    hub.leave(one)
    hub.unsubscribe(one, "c")  # already gone: nothing happens
    hub.leave(two)
    assert seen == [("first", ("s1", "c")), ("last", ("s1", "c"))]
    assert hub.channels() == []


def test_ready_deliveries_are_taken_together_for_one_write():
    hub = Hub()
    conn = Connection("1", SVC, "sse", 10)
    hub.subscribe(conn, "c")
    hub.deliver("s1", items(STREAM_ITEM, STREAM_ITEM, STREAM_ITEM))
    first = conn.queue.get_nowait()
    assert len(conn.take_ready(first)) == 3
    assert conn.queue.empty()
