"""Fan-out on one node: formats by transport, services kept apart, slow consumers dropped and counted,
prev-id order, and channels a long-poll left lingering with their last id."""

import asyncio
import json

from broker.fanout.hub import WAKE_SLICE, Hub
from broker.grip.publish import parse_publish_body
from broker.grip.reliability import LastIds, Sequencer
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection, Delivery

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
    assert (sse.queued, ws.queued, poll.queued) == (1, 0, 0)


def test_a_channel_of_one_service_never_reaches_another_services_clients():
    hub = Hub()
    mine, theirs = Connection("1", SVC, "sse", 10), Connection("2", OTHER, "sse", 10)
    hub.subscribe(mine, "c")
    hub.subscribe(theirs, "c")
    hub.deliver("s1", items(STREAM_ITEM))
    assert (mine.queued, theirs.queued) == (1, 0)


def test_a_full_queue_drops_deliveries_and_counts_them_as_dropped():
    hub = Hub()
    slow = Connection("1", SVC, "http-stream", 2)
    hub.subscribe(slow, "c")
    assert hub.deliver("s1", items(STREAM_ITEM, STREAM_ITEM, STREAM_ITEM)) == 2
    assert (slow.queued, slow.dropped) == (2, 1)


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
    assert len(conn.take()) == 3
    assert conn.queued == 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_items_reach_subscribers_in_prev_id_order_and_a_late_one_is_sent_by_the_tick():
    asyncio.run(_items_in_prev_id_order())


async def _items_in_prev_id_order() -> None:  # in a loop: the tick also refreshes the stream's hold
    clock = Clock()
    hub = Hub(Sequencer(LastIds(), wait_s=5.0), clock=clock)
    conn = Connection("1", SVC, "sse", 10)
    hub.subscribe(conn, "c")
    hub.deliver("s1", items(seq_item("1"), seq_item("3", "2")))
    hub.deliver("s1", items(seq_item("2", "1"), seq_item("9", "8")))
    assert [d.item.id for d in conn.drain()] == ["1", "2", "3"]
    clock.now = 4.9
    assert (hub.tick(), conn.queued) == (0, 0)
    clock.now = 5.0
    assert (hub.tick(), [d.item.id for d in conn.drain()]) == (1, ["9"])
    assert hub.last_ids.get(("s1", "c")) == "9"


def test_a_channel_a_long_poll_left_lingers_keeping_its_last_id_then_is_dropped_by_the_tick():
    clock = Clock()
    hub = Hub(linger_s=60.0, clock=clock)
    seen = []
    hub.on_first = lambda key: seen.append(("first", key))
    hub.on_last = lambda key: seen.append(("last", key))
    poll = Connection("1", SVC, "long-poll", 10)
    hub.subscribe(poll, "c")
    hub.leave(poll)
    hub.deliver("s1", items(seq_item("7")))  # published between two polls: nobody gets it, its id is kept
    assert (hub.channels(), hub.last_ids.get(("s1", "c"))) == ([("s1", "c")], "7")
    again = Connection("2", SVC, "long-poll", 10)
    hub.subscribe(again, "c")  # polling again within the linger: no new Redis subscription
    hub.leave(again)
    clock.now = 59.9
    hub.tick()
    assert hub.last_ids.get(("s1", "c")) == "7"
    clock.now = 60.0
    hub.tick()
    assert (hub.channels(), hub.last_ids.get(("s1", "c"))) == ([], None)
    assert seen == [("first", ("s1", "c")), ("last", ("s1", "c"))]


def test_a_channel_a_stream_left_is_dropped_at_once_with_its_last_id():
    hub = Hub()
    stream = Connection("1", SVC, "sse", 10)
    hub.subscribe(stream, "c")
    hub.deliver("s1", items(seq_item("7")))
    hub.leave(stream)
    assert (hub.channels(), hub.last_ids.get(("s1", "c"))) == ([], None)


def test_the_http_holds_of_a_channel_new_on_the_node_are_refreshed_a_second_later_once():
    asyncio.run(_refreshed_once())


async def _refreshed_once() -> None:
    clock = Clock()
    hub = Hub(clock=clock)
    poll, socket = Connection("1", SVC, "long-poll", 10), Connection("2", SVC, "websocket", 10)
    hub.subscribe(poll, "c")
    hub.subscribe(socket, "c")
    clock.now = 0.9
    hub.tick()
    assert not poll.refresh_due.done()
    clock.now = 1.0
    hub.tick()
    assert (poll.refresh_due.done(), socket.refresh_due.done()) == (True, False)
    poll.take_refresh()
    hub.leave(poll)
    hub.subscribe(poll, "c")  # the channel was never dropped (the socket holds it): not new, no refresh
    clock.now = 5.0
    hub.tick()
    assert not poll.refresh_due.done()


def seq_item(id: str, prev: str | None = None) -> str:
    return json.dumps({"channel": "c", "id": id, **({"prev-id": prev} if prev else {}), "http-stream": {"content": id}})


async def _waiting_hold() -> tuple[Hub, Connection, asyncio.Future[list[Delivery]]]:
    """A hub, one subscribed connection and its hold waiting for deliveries."""
    hub = Hub()
    conn = Connection("1", SVC, "sse", 10)
    hub.subscribe(conn, "c")
    waiting = asyncio.ensure_future(conn.next_batch())
    await asyncio.sleep(0)
    return hub, conn, waiting


def test_a_hold_waiting_for_deliveries_takes_everything_queued_when_woken():
    async def run() -> None:
        hub, conn, waiting = await _waiting_hold()
        hub.deliver("s1", items(STREAM_ITEM, STREAM_ITEM))
        assert (len(await waiting), conn.queued) == (2, 0)

    asyncio.run(run())


def test_a_hold_that_stopped_waiting_is_woken_the_next_time_it_waits():
    async def run() -> None:
        hub, conn, gave_up = await _waiting_hold()
        gave_up.cancel()  # e.g. a keep-alive timer ran out first
        await asyncio.sleep(0)
        hub.deliver("s1", items(STREAM_ITEM))
        assert len(await asyncio.wait_for(conn.next_batch(), 1)) == 1

    asyncio.run(run())


def test_holds_are_woken_a_slice_per_loop_turn_and_a_publish_meanwhile_joins_the_same_write():
    asyncio.run(_woken_in_slices())


async def _woken_in_slices() -> None:
    hub = Hub()
    conns = [Connection(str(n), SVC, "sse", 10) for n in range(WAKE_SLICE * 2 + 10)]
    for conn in conns:
        hub.subscribe(conn, "c")
    waits = [asyncio.ensure_future(conn.next_batch()) for conn in conns]
    await asyncio.sleep(0)
    hub.deliver("s1", items(STREAM_ITEM))
    await asyncio.sleep(0)  # one turn: the first slice's holds take their item; the next slice is woken
    assert sum(wait.done() for wait in waits) == WAKE_SLICE
    hub.deliver("s1", items(STREAM_ITEM))  # a second publish while the other holds have not written yet
    batches = await asyncio.gather(*waits)
    sizes = sorted(len(batch) for batch in batches)
    assert sizes == [1] * WAKE_SLICE + [2] * (len(conns) - WAKE_SLICE)  # both items in one write
    assert sum(conn.queued for conn in conns) == WAKE_SLICE  # the first slice's second item waits its turn
