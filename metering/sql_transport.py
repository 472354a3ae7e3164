"""kombu's SQLAlchemy transport (the embedded default's Celery broker), tuned for fanmeter.

- It polls more often. The SQL transport has no push: a worker polls the message table and
  sleeps between empty polls, one second by default, which left workers idle most of the time
  in bench/ingest.py. kombu passes transport options straight to ``create_engine`` for this
  transport, so the interval is set on a subclass instead.
- It deletes delivered messages. kombu only hides a message once a worker takes it, so the
  table would keep every batch ever ingested; hidden messages are never delivered again, so
  deleting them loses nothing.

``configure`` swaps ``sqla+`` URLs to this transport's alias.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

ALIAS = "fanmeter-sqla"


# Delivered messages are deleted every this many polls (an idle worker polls ten times a second).
PURGE_EVERY = 100


class Channel(kombu_sqlalchemy.Channel):
    _polls = 0

    def _get(self, queue: str, timeout: float | None = None) -> Any:  # noqa: ARG002 (kombu's signature)
        try:
            return super()._get(queue)
        finally:
            self._polls += 1
            if self._polls % PURGE_EVERY == 0:
                self.purge_delivered()

    def purge_delivered(self) -> int:
        """Delete the messages workers have taken; return how many."""
        deleted = self.session.query(self.message_cls).filter(self.message_cls.visible.is_(False)).delete()
        self.session.commit()
        return int(deleted)


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = 0.1


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"


def with_fast_polling(url: str) -> str:
    """``sqla+sqlite:///…`` -> ``fanmeter-sqla+sqlite:///…``; any other URL unchanged."""
    return f"{ALIAS}+{url.removeprefix('sqla+')}" if url.startswith("sqla+") else url
