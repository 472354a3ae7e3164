"""Which fanmeter account and service a Pushpin record belongs to (the ``--route-map`` file).

Pushpin names a route in its stats only when the routes file gives it an explicit id
(``*,id=chat example-origin:80``); records of routes without one carry no route (Pushpin's
"global" route). ``message`` records carry no route at all, only the channel, so a route can
also claim the channel prefix it uses (Pushpin's ``prefix=`` route option). TOML or JSON::

    [default]                  # the global route, unmatched channels, and published counts
    account_id = "acme"
    service_id = "svc-main"

    [[routes]]
    route = "chat"             # the routes file's id=chat
    account_id = "acme"
    service_id = "svc-chat"
    channel_prefix = "chat-"   # optional: messages on channels starting with it

A record of a route id the file does not list is never guessed into another account: it is
skipped and counted as unmapped (docs/decisions.md, "Pushpin adapter").
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.usage.events import Subject


class RouteMapError(ValueError):
    """The route-map file is unreadable or invalid; the message names the problem."""


@dataclass(frozen=True, slots=True)
class RouteMap:
    routes: dict[str, Subject] = field(default_factory=dict)
    prefixes: tuple[tuple[str, Subject], ...] = ()  # longest first
    default: Subject | None = None

    def for_route(self, route: str | None) -> Subject | None:
        """A connection's subject: its route's entry, or the default for the global route."""
        return self.default if route is None else self.routes.get(route)

    def for_channel(self, channel: str) -> Subject | None:
        """A message's subject: the longest matching channel prefix, else the default.

        >>> svc = Subject("acme", "svc-chat")
        >>> RouteMap(prefixes=(("chat-", svc),)).for_channel("chat-room1") == svc
        True
        """
        for prefix, subject in self.prefixes:
            if channel.startswith(prefix):
                return subject
        return self.default

    def for_published(self) -> Subject | None:
        """Published counts come from the global route's report, so they go to the default."""
        return self.default


def load_route_map(path: Path) -> RouteMap:
    """Read and validate a route-map file (``.toml``, or JSON with the same keys)."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as error:
        raise RouteMapError(f"cannot read route map {path}: {error.strerror}") from None
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise RouteMapError(f"route map {path} is not valid TOML/JSON: {error}") from None
    return parse_route_map(doc)


def parse_route_map(doc: Any) -> RouteMap:
    if not isinstance(doc, dict):
        raise RouteMapError("route map must be an object with 'routes' and/or 'default'")
    entries = doc.get("routes", [])
    if not isinstance(entries, list):
        raise RouteMapError("'routes' must be a list")
    routes: dict[str, Subject] = {}
    prefixes: list[tuple[str, Subject]] = []
    for n, entry in enumerate(entries):
        where = f"routes[{n}]"
        route, subject = _text(entry, "route", where), _subject(entry, where)
        if route in routes:
            raise RouteMapError(f"{where}: route {route!r} is listed twice")
        routes[route] = subject
        if isinstance(entry, dict) and "channel_prefix" in entry:
            prefixes.append((_text(entry, "channel_prefix", where), subject))
    default = _subject(doc["default"], "default") if "default" in doc else None
    if not routes and default is None:
        raise RouteMapError("route map maps nothing: give 'routes' or a 'default'")
    prefixes.sort(key=lambda item: len(item[0]), reverse=True)
    return RouteMap(routes, tuple(prefixes), default)


def _subject(entry: Any, where: str) -> Subject:
    return Subject(_text(entry, "account_id", where), _text(entry, "service_id", where))


def _text(entry: Any, name: str, where: str) -> str:
    value = entry.get(name) if isinstance(entry, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise RouteMapError(f"{where}: '{name}' must be a string of 1-256 characters")
    return value
