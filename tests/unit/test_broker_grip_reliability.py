"""Pushpin's reliable delivery as pure rules: last ids, prev-id ordering, stale holds, Grip-Last, next links."""

import json

import pytest

from broker.exceptions import GripError
from broker.grip.instructions import Channel
from broker.grip.publish import Item, parse_publish_body
from broker.grip.reliability import LastIds, Sequencer, follows, grip_last, resolve_link, stale_channels

KEY = ("svc", "ch")


def item(id=None, prev=None, channel="ch", no_seq=False):
    raw = {"channel": channel, "http-stream": {"content": f"{id}\n"}, "no-seq": no_seq}
    raw |= {"id": id} if id is not None else {}
    raw |= {"prev-id": prev} if prev is not None else {}
    (parsed,) = parse_publish_body(json.dumps({"items": [raw]}).encode())
    return parsed


def ids(items: list[Item]) -> list[str | None]:
    return [i.id for i in items]


def sequencer(wait_s=5.0, id_ttl_s=60.0, pending_max=100):
    return Sequencer(LastIds(), wait_s, id_ttl_s, pending_max)


def test_the_last_id_is_the_last_item_sent_and_an_item_without_an_id_leaves_none_known():
    last = LastIds()
    last.record(KEY, "1")
    last.record(KEY, "2")
    assert last.get(KEY) == "2"
    last.record(KEY, None)
    assert last.get(KEY) is None
    last.record(KEY, "3")
    last.forget(KEY)
    assert (last.get(KEY), len(last)) == (None, 0)


def test_the_last_id_cache_is_bounded_and_evicts_the_channel_set_longest_ago():
    last = LastIds(capacity=2)
    last.record(("s", "a"), "1")
    last.record(("s", "b"), "1")
    last.record(("s", "a"), "2")  # a is now the newest
    last.record(("s", "c"), "1")
    assert (last.get(("s", "a")), last.get(("s", "b")), last.get(("s", "c"))) == ("2", None, "1")


def test_items_in_order_are_sent_at_once_and_each_becomes_the_last_id():
    seq = sequencer()
    assert ids(seq.add(KEY, item("1"), 0.0, seq=True)) == ["1"]
    assert ids(seq.add(KEY, item("2", prev="1"), 0.0, seq=True)) == ["2"]
    assert seq.last_ids.get(KEY) == "2"


def test_the_first_item_of_a_channel_is_sent_whatever_its_prev_id():
    seq = sequencer()
    assert ids(seq.add(KEY, item("5", prev="4"), 0.0, seq=True)) == ["5"]


def test_an_item_ahead_of_its_predecessor_waits_for_it_then_both_go_in_order():
    seq = sequencer()
    seq.add(KEY, item("1"), 0.0, seq=True)
    assert seq.add(KEY, item("3", prev="2"), 0.1, seq=True) == []
    assert seq.add(KEY, item("4", prev="3"), 0.2, seq=True) == []
    assert ids(seq.add(KEY, item("2", prev="1"), 0.3, seq=True)) == ["2", "3", "4"]
    assert (seq.last_ids.get(KEY), seq.waiting) == ("4", 0)


def test_an_item_whose_predecessor_never_comes_is_sent_after_the_wait():
    seq = sequencer(wait_s=5.0)
    seq.add(KEY, item("1"), 0.0, seq=True)
    seq.add(KEY, item("9", prev="8"), 1.0, seq=True)
    assert seq.expire(5.9) == []
    assert [(key, i.id) for key, i in seq.expire(6.0)] == [(KEY, "9")]
    assert seq.last_ids.get(KEY) == "9"


def test_expired_items_go_oldest_first_and_pull_their_followers_along():
    seq = sequencer(wait_s=1.0)
    seq.add(KEY, item("1"), 0.0, seq=True)
    seq.add(KEY, item("6", prev="5"), 0.5, seq=True)  # waits for 5, which follows 4 ...
    seq.add(KEY, item("5", prev="4"), 0.2, seq=True)
    assert ids([i for _key, i in seq.expire(2.0)]) == ["5", "6"]


def test_a_second_item_waiting_for_the_same_id_or_one_too_many_is_dropped():
    seq = sequencer(pending_max=2)
    seq.add(KEY, item("1"), 0.0, seq=True)
    seq.add(KEY, item("3", prev="2"), 0.0, seq=True)
    seq.add(KEY, item("3b", prev="2"), 0.0, seq=True)  # same predecessor: dropped
    seq.add(KEY, item("5", prev="4"), 0.0, seq=True)
    seq.add(KEY, item("7", prev="6"), 0.0, seq=True)  # a third waiting item: dropped
    assert seq.waiting == 2
    assert ids(seq.add(KEY, item("2", prev="1"), 0.0, seq=True)) == ["2", "3"]


def test_no_seq_items_and_channels_nobody_holds_skip_the_wait_and_leave_the_last_id_alone():
    seq = sequencer()
    seq.add(KEY, item("1"), 0.0, seq=True)
    assert ids(seq.add(KEY, item("9", prev="8", no_seq=True), 0.0, seq=True)) == ["9"]
    assert ids(seq.add(KEY, item("7", prev="6"), 0.0, seq=False)) == ["7"]
    assert seq.last_ids.get(KEY) == "1"


def test_an_id_seen_again_on_the_channel_within_the_ttl_is_a_duplicate():
    seq = sequencer(id_ttl_s=60.0)
    assert ids(seq.add(KEY, item("a"), 0.0, seq=False)) == ["a"]
    assert seq.add(KEY, item("a"), 59.0, seq=True) == []
    assert ids(seq.add(("svc", "other"), item("a", channel="other"), 59.0, seq=True)) == ["a"]  # another channel
    assert ids(seq.add(KEY, item("a"), 60.0, seq=True)) == ["a"]  # forgotten after the ttl
    assert len(seq.add(KEY, item(), 60.0, seq=True)) == len(seq.add(KEY, item(), 60.0, seq=True)) == 1


def test_a_zero_ttl_keeps_no_ids_and_clear_drops_what_waits_on_a_channel():
    seq = sequencer(id_ttl_s=0)
    seq.add(KEY, item("1"), 0.0, seq=True)
    assert ids(seq.add(KEY, item("1"), 0.0, seq=True)) == ["1"]
    seq.add(KEY, item("3", prev="2"), 0.0, seq=True)
    seq.clear(KEY)
    assert (seq.waiting, seq.expire(100.0)) == (0, [])


def test_a_hold_is_stale_only_when_it_names_a_prev_id_and_a_different_last_id_is_known():
    last = LastIds()
    last.record(("svc", "a"), "5")
    last.record(("svc", "b"), "5")
    channels = (Channel("a", "4"), Channel("b", "5"), Channel("c", "1"), Channel("d"))
    assert stale_channels("svc", channels, last) == ("a",)
    assert stale_channels("other-svc", channels, last) == ()


@pytest.mark.parametrize(
    ("expected", "prev_id", "follows_it"),
    [(None, None, True), (None, "3", True), ("3", "3", True), ("3", "2", False), ("3", None, False)],
)
def test_an_item_follows_a_hold_when_the_hold_expects_nothing_or_exactly_its_prev_id(expected, prev_id, follows_it):
    assert follows(expected, item("4", prev=prev_id)) is follows_it


def test_grip_last_names_each_channel_with_a_known_last_id_as_pushpin_writes_it():
    headers = grip_last({"a": "3", "b": None, "c d": "x"})
    assert headers == [("Grip-Last", "a; last-id=3"), ("Grip-Last", "c d; last-id=x")]


@pytest.mark.parametrize(
    ("current", "link", "path"),
    [
        ("/feed?after=1", "?after=3", "/feed?after=3"),
        ("/a/feed", "more", "/a/more"),
        ("/feed", "/other/x?y=1,2", "/other/x?y=1,2"),
        ("/feed", "https://Client.Example/next", "/next"),
        ("/feed", "//origin.test:8080/next", "/next"),
    ],
)
def test_a_next_link_resolves_against_the_path_it_came_from(current, link, path):
    assert resolve_link(current, link, {"client.example", "origin.test"}) == path


@pytest.mark.parametrize("link", ["https://elsewhere.example/x", "ftp://origin.test/x", "javascript:alert(1)"])
def test_a_next_link_outside_the_services_origin_is_refused(link):
    with pytest.raises(GripError, match="outside the service's origin"):
        resolve_link("/feed", link, {"origin.test"})
