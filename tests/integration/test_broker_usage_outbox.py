"""The broker's outbox file and shipper: batches keep their id on every resend, and a reopened outbox resumes."""

import json

from broker.usage.outbox import OutboxStore
from broker.usage.shipper import ship_once

SECOND = 1_000_000


class FakePipeline:
    """Records what was sent; ``record`` marks batch ids as stored by the pipeline."""

    def __init__(self):
        self.sent: list[tuple[str, list[str]]] = []
        self.stored: set[str] = set()

    def send(self, batch_id, payloads):
        self.sent.append((batch_id, payloads))

    def recorded(self, ids):
        return self.stored & set(ids)


def events(n, start=0):
    return [json.dumps({"id": str(i)}) for i in range(start, start + n)]


def ship(store, pipeline, now_us, batch=2, resend_us=10 * SECOND):
    return ship_once(store, "node", pipeline.send, pipeline.recorded, now_us, batch, resend_us)


def test_events_are_sealed_into_batches_in_order_and_each_batch_is_sent_once_until_due_again(tmp_path):
    store, pipeline = OutboxStore(tmp_path / "o.sqlite"), FakePipeline()
    store.append(events(5))
    assert ship(store, pipeline, 0).sent == 3
    assert [json.loads(p)["id"] for _, payloads in pipeline.sent for p in payloads] == ["0", "1", "2", "3", "4"]
    assert ship(store, pipeline, 5 * SECOND).sent == 0  # not due yet: no duplicate traffic


def test_an_unacknowledged_batch_is_resent_under_the_same_id(tmp_path):
    store, pipeline = OutboxStore(tmp_path / "o.sqlite"), FakePipeline()
    store.append(events(1))
    ship(store, pipeline, 0)
    ship(store, pipeline, 11 * SECOND)
    assert [b for b, _ in pipeline.sent] == [pipeline.sent[0][0]] * 2
    assert pipeline.sent[0][1] == pipeline.sent[1][1]


def test_a_batch_the_pipeline_recorded_is_forgotten_and_never_sent_again(tmp_path):
    store, pipeline = OutboxStore(tmp_path / "o.sqlite"), FakePipeline()
    store.append(events(3))
    ship(store, pipeline, 0)
    pipeline.stored.add(pipeline.sent[0][0])
    result = ship(store, pipeline, 20 * SECOND)
    assert (result.acknowledged, store.backlog()) == (1, 1)
    assert [b for b, _ in pipeline.sent[2:]] == [pipeline.sent[1][0]]


def test_a_reopened_outbox_resumes_with_what_was_not_acknowledged(tmp_path):
    path = tmp_path / "o.sqlite"
    first, pipeline = OutboxStore(path), FakePipeline()
    first.append(events(3))
    ship(first, pipeline, 0)
    first.append(events(1, start=3))  # written after the last pass, then the process dies
    reopened = OutboxStore(path)
    ship(reopened, pipeline, 11 * SECOND)
    resent = {p for _, payloads in pipeline.sent for p in payloads}
    assert resent == set(events(4))
    assert reopened.backlog() == 4
