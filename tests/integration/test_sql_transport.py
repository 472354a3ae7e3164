"""The embedded Celery broker: kombu's SQL transport as fanmeter configures it."""

from __future__ import annotations

from pathlib import Path

from kombu import Connection
from sqlalchemy import create_engine, text

from metering import sql_transport


def test_taken_messages_are_deleted_so_the_broker_file_does_not_grow_forever(tmp_path: Path) -> None:
    database = tmp_path / "celery.db"
    url = sql_transport.with_fast_polling(f"sqla+sqlite:///{database}")
    with Connection(url) as connection:
        queue = connection.SimpleQueue("probe")
        for n in range(sql_transport.PURGE_EVERY + 20):
            queue.put({"n": n})
        received = []
        for _ in range(sql_transport.PURGE_EVERY + 20):
            message = queue.get(timeout=5)
            message.ack()  # unacknowledged messages are put back when the channel closes
            received.append(message.payload["n"])
        queue.close()

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM kombu_message")).scalar()
    engine.dispose()
    assert received == list(range(sql_transport.PURGE_EVERY + 20))
    assert left is not None and left < 30  # only what was taken since the last purge


def test_only_sqla_urls_are_switched_to_the_tuned_transport() -> None:
    assert sql_transport.with_fast_polling("sqla+sqlite:///x.db") == "fanmeter-sqla+sqlite:///x.db"
    assert sql_transport.with_fast_polling("amqp://guest@localhost//") == "amqp://guest@localhost//"
