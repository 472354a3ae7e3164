"""Broker errors, each carrying a reason a client or operator can act on.

BrokerError
├── ConfigError        the services file is unreadable or breaks its schema
├── GripError          an origin sent GRIP instructions we cannot follow (answered 502)
├── PublishError       a publish body breaks the format (answered 400 "Invalid format: …")
└── WsEventsError      a WebSocket-over-HTTP body is malformed (answered 502 to the client side)
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every broker error."""


class ConfigError(BrokerError):
    """The services configuration is invalid."""


class GripError(BrokerError):
    """The origin's GRIP instructions are invalid."""


class PublishError(BrokerError):
    """The publish request body is invalid; the message is the reason."""


class WsEventsError(BrokerError):
    """A WebSocket-over-HTTP events body is malformed."""
