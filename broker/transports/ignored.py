"""What the broker ignores from an origin (an unknown control message or GRIP header), logged once per service.

Pushpin ignores both and goes on with the connection; so does fanmeter, and an operator learns of it
once per service and name (not once per message: an origin may send it with every answer).
"""

from __future__ import annotations

import logging

from broker.grip.filters import KNOWN_FILTERS

log = logging.getLogger("broker.grip")
# Bounded: a hostile origin naming a new header in every answer must not grow the set without end.
MAX_REMEMBERED = 10_000
_logged: set[tuple[str, str, str]] = set()


def ignored(service_id: str, what: str, name: str, detail: str = "") -> None:
    """Log, once per (service, what, name), that the broker ignored ``what`` named ``name`` from the origin."""
    key = (service_id, what, name)
    if key in _logged or len(_logged) >= MAX_REMEMBERED:
        return
    _logged.add(key)
    log.warning("service %s: origin sent %s %s, ignored%s", service_id, what, name,
                f" ({detail})" if detail else "")  # fmt: skip


def forget() -> None:
    """Log every name again (tests)."""
    _logged.clear()


def known_filters(service_id: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The filters of a subscription the broker applies; any other is ignored (and logged once)."""
    if not names:
        return names
    for name in names:
        if name not in KNOWN_FILTERS:
            ignored(service_id, "the subscription filter", repr(name)[:40])
    return tuple(name for name in names if name in KNOWN_FILTERS)
