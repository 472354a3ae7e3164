"""kombu's SQLAlchemy transport (the embedded default's Celery broker), polling more often.

The SQL transport has no push: a worker polls the message table and sleeps between empty
polls, one second by default, which left workers idle most of the time in bench/ingest.py.
kombu passes transport options straight to ``create_engine`` for this transport, so the
interval is set on a subclass instead. ``configure`` swaps ``sqla+`` URLs to this alias.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

ALIAS = "fanmeter-sqla"


class Transport(kombu_sqlalchemy.Transport):
    polling_interval = 0.1


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"


def with_fast_polling(url: str) -> str:
    """``sqla+sqlite:///…`` -> ``fanmeter-sqla+sqlite:///…``; any other URL unchanged."""
    return f"{ALIAS}+{url.removeprefix('sqla+')}" if url.startswith("sqla+") else url
