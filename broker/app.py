"""The broker's ASGI application: routing, the publish API and the GRIP proxy, wired by ``build``.

Routes, in order:
- ``POST /service/{service_id}/publish/``: the publish API;
- ``/s/{service_id}/...``: the embedded default's path-prefix routing (prefix stripped);
- any other path: the service whose ``hosts`` names the request's Host.

With a metrics listener (``FANMETER_BROKER_METRICS_PORT``), requests that arrive on it are answered
``GET /metrics`` only (``broker.metrics``), never routed to a service: the client port never shows them.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

from broker.asgi import (
    BodySlow,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    encode_headers,
    header,
    read_body,
    request_headers,
    respond,
    respond_closing,
    respond_text,
)
from broker.exceptions import GripError, PublishError
from broker.fanout.hub import Hub
from broker.fanout.nodes import Fanout
from broker.grip import instructions as grip
from broker.grip import wsevents
from broker.grip.publish import MAX_BODY_BYTES, parse_publish_body
from broker.limits import HELD_RETRY_AFTER_S, BrokerLimits, PublishLimited
from broker.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from broker.metrics import BrokerMetrics
from broker.origin.client import OriginError, Origins, forwardable
from broker.services.model import BrokerConfig, ServiceConfig
from broker.services.refresh import keep_fresh
from broker.transports.connection import Ending
from broker.transports.cors import with_cors
from broker.transports.dispatch import REFUSED_HEADERS, serve
from broker.transports.held_request import ClientRequest, HoldContext, bad_gateway
from broker.transports.websocket import websocket_session
from broker.usage.admission import MeteringRefused
from broker.usage.events import Subject
from broker.usage.meter import Meter
from broker.usage.outbox import OutboxWriter
from broker.usage.shipper import Shipper
from kernel.http_limits import declares_body

# Container allocations between two young-generation collections (CPython's default is 700). With
# hundreds of requests in flight, collecting every 700 allocations promotes their short-lived objects
# to the old generations, and each 25 % growth there triggers a full collection that walks every held
# connection: 27 % of the broker's CPU with 15,000 streams held (docs/decisions.md, "Broker CPU").
GC_YOUNG_THRESHOLD = 10_000
PUBLISH_PATH = re.compile(r"^/service/([^/]+)/publish/$")
PREFIX_PATH = re.compile(r"^/s/([^/]+)(/.*)?$")
MAX_REQUEST_BYTES = 1_000_000
# Characters a path keeps as they are when it has to be percent-encoded again (RFC 3986 pchar and "/").
PATH_SAFE = "/:@!$&'()*+,;=~"
# Only the broker speaks WebSocket-over-HTTP to an origin; Pushpin answers a client that tries the same.
WS_EVENTS_REFUSAL = "Client not allowed to send WebSocket events directly.\n"
WS_EVENTS_TYPE = wsevents.CONTENT_TYPE.encode()
HELD_REFUSAL_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", str(HELD_RETRY_AFTER_S)))


class Route(NamedTuple):
    """Where a client request goes: its service (None when refused), the origin's request target, and why refused."""

    service: ServiceConfig | None
    target: str
    refusal: str | None


@dataclass
class Broker:
    """Everything one broker process holds; ``app`` serves it."""

    config: BrokerConfig
    hub: Hub
    meter: Meter
    writer: OutboxWriter
    origins: Origins
    fanout: Fanout
    shipper: Shipper | None
    queue_size: int
    alive_interval_s: float
    flush_interval_s: float
    # Where fresh services come from (the database source) and how often they are read again.
    reload: Callable[[], BrokerConfig] | None = None
    reload_interval_s: float = 5.0
    # How long a request body may take to arrive once it started (408 after).
    body_timeout_s: float = 30.0
    # The metrics listener's port, and what it serves (None: no metrics listener).
    metrics_port: int | None = None
    metrics: BrokerMetrics | None = None
    # Publishes per token and connections held per service on this node (broker.limits).
    limits: BrokerLimits = field(default_factory=BrokerLimits)
    _meter_task: asyncio.Task[None] | None = None
    _reload_task: asyncio.Task[None] | None = None
    _tick_task: asyncio.Task[None] | None = None

    @property
    def holds(self) -> HoldContext:
        return HoldContext(self.hub, self.meter, self.origins, self._service_of)

    def _service_of(self, service_id: str) -> ServiceConfig | None:
        return self.config.services.get(service_id)

    async def startup(self) -> None:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        self.writer.start()
        await self.fanout.start()
        self._meter_task = asyncio.get_running_loop().create_task(
            self.meter.run(self.alive_interval_s, self.flush_interval_s)
        )
        if self.shipper is not None:
            self.shipper.start()
        self._tick_task = asyncio.get_running_loop().create_task(_tick(self.hub))
        if self.reload is not None:
            self._reload_task = asyncio.get_running_loop().create_task(
                keep_fresh(self.reload, self._apply, self.reload_interval_s)
            )

    def _apply(self, config: BrokerConfig) -> None:
        """Serve the reloaded services; end the connections of services no longer served."""
        self.config = config
        for conn in list(self.meter.open.values()):
            ending = no_longer_served(config, conn.service.service_id)
            if ending is not None:
                conn.end(ending)

    async def shutdown(self) -> None:
        if self._reload_task is not None:
            self._reload_task.cancel()
        for task in (self._meter_task, self._tick_task):
            if task is not None:
                task.cancel()
        await self.meter.stop()
        await self.writer.stop()
        await self.fanout.stop()
        await self.origins.close()
        if self.shipper is not None:
            await asyncio.to_thread(self.shipper.stop)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def route(self, scope: Scope) -> Route:
        """The service a client request is for, the origin's request target, or a reason it has none."""
        path: str = scope["path"]
        match = PREFIX_PATH.match(path)
        if match:
            service = self.config.services.get(match.group(1))
            target = origin_target(scope, match)
            if service is None:
                return Route(None, target, f"Unknown service {match.group(1)}")
        else:
            host = header(request_headers(scope), "host") or ""
            service, target = self.config.by_host(host), origin_target(scope)
            if service is None:
                return Route(None, target, f"No service is configured for host {host!r} (or use /s/<service_id>/...)")
        if not service.fanout_enabled:
            return Route(None, target, f"Fanout is not enabled for service {service.service_id}")
        return Route(service, target, None)

    def _on_metrics_listener(self, scope: Scope) -> bool:
        server = scope.get("server")
        return self.metrics_port is not None and server is not None and server[1] == self.metrics_port

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._on_metrics_listener(scope):
            await self._metrics(scope, send)
            return
        match = PUBLISH_PATH.match(scope["path"])
        if match:
            await self._publish(match.group(1), scope, receive, send)
            return
        service, path, refusal = self.route(scope)
        if service is None:
            await respond_text(send, 403 if refusal and refusal.startswith("Fanout") else 404, f"{refusal}\n")
            return
        await self._proxy(service, path, scope, receive, send)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if scope["path"] != "/metrics" or self.metrics is None:
            await respond_text(send, 404, "Not found: this listener serves GET /metrics only\n")
        elif scope["method"] not in ("GET", "HEAD"):
            await respond_text(send, 405, "Method not allowed: GET /metrics\n")
        else:
            await respond(send, 200, await self.metrics.exposition(), (("Content-Type", METRICS_CONTENT_TYPE),))

    async def _publish(self, service_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, text = await self._handle_publish(service_id, scope, receive)
        except PublishLimited as limited:
            self.meter.tally.publish_answered(429)
            body = self.limits.publish_refusal(limited.token_id, limited.retry_after_s)
            await respond(
                send, 429, body, (("Content-Type", "application/json"), ("Retry-After", str(limited.retry_after_s)))
            )
            return
        self.meter.tally.publish_answered(status)
        if status in (408, 413):  # the rest of the body is not read: the connection cannot carry another request
            await respond_closing(send, status, text)
        elif status == 503:  # the outbox cannot meter it (broker/usage/admission.py): come back later
            await respond(send, 503, text.encode(), REFUSED_HEADERS)
        else:
            await respond_text(send, status, text)

    async def _handle_publish(self, service_id: str, scope: Scope, receive: Receive) -> tuple[int, str]:
        if scope["method"] != "POST":
            return 405, "Method not allowed: publish with POST\n"
        service = self.config.services.get(service_id)
        if service is None:
            return 404, f"Unknown service {service_id}\n"
        headers = request_headers(scope)
        token_id = publish_token_id(service, headers)
        if isinstance(token_id, tuple):
            return token_id
        if not service.fanout_enabled:
            return 403, f"Fanout is not enabled for service {service_id}\n"
        retry_after_s = self.limits.publish_wait(service_id, token_id)
        if retry_after_s:
            raise PublishLimited(token_id, retry_after_s)  # before the body is read: nothing published or metered
        try:
            body = await read_body(receive, MAX_BODY_BYTES, self.body_timeout_s)
        except BodyTooLarge:
            return 413, f"Request body over {MAX_BODY_BYTES} bytes\n"
        except BodySlow:
            return 408, "Request body not received in time\n"
        try:
            items = parse_publish_body(body)
        except PublishError as error:
            return 400, f"Invalid format: {error}\n"
        try:
            await self.meter.published(Subject(service.account_id, service.service_id), items)
        except MeteringRefused as refused:  # nothing was published: the publisher tries again later
            return 503, f"{refused}\n"
        await self.fanout.publish(service.service_id, items)
        return 200, "Published\n"

    async def _proxy(self, service: ServiceConfig, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        if service.cross_origin:  # every answer from here on, the broker's own errors too, as Pushpin's
            send = with_cors(send, scope["headers"])
        if is_ws_events(scope["headers"]):
            await respond_text(send, 403, WS_EVENTS_REFUSAL)
            return
        try:
            body = await read_body(
                receive, MAX_REQUEST_BYTES, self.body_timeout_s if declares_body(scope["headers"]) else None
            )
        except BodyTooLarge:
            await respond_closing(send, 413, f"Request body over {MAX_REQUEST_BYTES} bytes\n")
            return
        except BodySlow:
            await respond_closing(send, 408, "Request body not received in time\n")
            return
        headers = request_headers(scope)
        forwarded = (*forwardable(headers), *_forwarded_for(scope))
        request = ClientRequest(service, scope["method"], path, forwarded, body, header(headers, "host") or "")
        holds = self.holds
        try:
            instruction = await request.ask(holds, [])
        except (OriginError, GripError) as error:
            await respond_text(send, 502, bad_gateway(error))
            return
        if instruction.hold is None:
            await serve(holds, request, instruction, receive, send, self.queue_size)
            return
        held = self.limits.held
        if not held.enter(service.service_id):  # refused before the meter opens it: never billed
            await respond(send, 503, held.refusal(service.service_id).encode(), HELD_REFUSAL_HEADERS)
            return
        try:
            await serve(holds, request, instruction, receive, send, self.queue_size)
        finally:
            held.leave(service.service_id)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        service, path, _refusal = self.route(scope)
        if service is None or self._on_metrics_listener(scope):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        held = self.limits.held
        if not held.enter(service.service_id):  # before the origin's OPEN and the meter: never billed
            await receive()
            await _deny_websocket(scope, send, held.refusal(service.service_id))
            return
        try:
            await websocket_session(self.holds, self.origins, service, path, scope, receive, send, self.queue_size)
        finally:
            held.leave(service.service_id)


async def _tick(hub: Hub, interval_s: float = 0.25) -> None:
    """Send items that waited long enough, refresh holds of new channels, end lingering channels."""
    while True:
        await asyncio.sleep(interval_s)
        hub.tick()


def no_longer_served(config: BrokerConfig, service_id: str) -> Ending | None:
    """Why a connection of ``service_id`` must end under ``config``; None while the service is served.

    Its clients get what a new request would: 404 for a service gone, 403 with Fanout off.
    """
    service = config.services.get(service_id)
    if service is None:
        return Ending("service removed", 404, f"Unknown service {service_id}")
    if not service.fanout_enabled:
        return Ending("Fanout disabled", 403, f"Fanout is not enabled for service {service_id}")
    return None


async def _deny_websocket(scope: Scope, send: Send, text: str) -> None:
    """Refuse a WebSocket handshake with a 503 and its reason (ASGI's denial response), else close it (1013)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return
    headers = encode_headers(HELD_REFUSAL_HEADERS)
    await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": text.encode()})


def check_publish_token(service: ServiceConfig, headers: grip.Headers) -> tuple[int, str] | None:
    """401 without a token, 403 with a token that is not one of the service's publish tokens."""
    found = publish_token_id(service, headers)
    return found if isinstance(found, tuple) else None


def publish_token_id(service: ServiceConfig, headers: grip.Headers) -> str | tuple[int, str]:
    """The id of the request's publish token (what its rate limit is keyed on), or the refusal: 401
    without a token, 403 with a token that is not one of the service's publish tokens.

    A token is the service's when it equals one of its ``publish_tokens`` (its id: its place in the
    services file, ``#1`` for the first) or its hex SHA-256 is one of its ``publish_token_hashes``
    (its id: the admin service's, ``publish_token_ids``), compared in constant time either way.
    """
    token = header(headers, "fastly-key")
    authorization = header(headers, "authorization")
    if token is None and authorization is not None:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    if not token:
        return 401, "Unauthorized: send a publish token in Fastly-Key or Authorization: Bearer\n"
    for place, known in enumerate(service.publish_tokens, 1):
        if hmac.compare_digest(token.encode(), known.encode()):
            return f"#{place}"
    digest = hashlib.sha256(token.encode()).hexdigest().encode()
    for place, known in enumerate(service.publish_token_hashes):
        if hmac.compare_digest(digest, known.encode()):
            ids = service.publish_token_ids
            return ids[place] if place < len(ids) else f"sha256:{known[:12]}"
    return 403, f"Forbidden: the token is not a publish token of service {service.service_id}\n"


def is_ws_events(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a client's request claims to be WebSocket-over-HTTP (``Content-Type: application/websocket-events``).

    ``raw_headers`` are the scope's: uvicorn gives the names in lowercase.
    """
    for name, value in raw_headers:
        if name == b"content-type":
            return value.partition(b";")[0].strip().lower() == WS_EVENTS_TYPE
    return False


def origin_target(scope: Scope, prefix: re.Match[str] | None = None) -> str:
    """The request target for the origin: the client's path as it sent it (percent-encoding kept), less the
    ``/s/<service_id>`` prefix that ``prefix`` matched, its dot-segments removed (``remove_dot_segments``),
    and its query.

    >>> scope = {"path": "/s/a/x y", "raw_path": b"/s/a/x%20y", "query_string": b"q=1"}
    >>> origin_target(scope, PREFIX_PATH.match(scope["path"]))
    '/x%20y?q=1'
    """
    raw: bytes | None = scope.get("raw_path")
    if prefix is None:
        path = raw.decode("latin-1") if raw else quote(scope["path"], safe=PATH_SAFE)
    else:
        parts = raw.decode("latin-1").split("/", 3) if raw else []
        if len(parts) >= 3 and unquote(parts[2]) == prefix.group(1):
            path = "/" + parts[3] if len(parts) == 4 else "/"
        else:  # no raw path, or one that does not spell the prefix plainly
            path = quote(prefix.group(2) or "/", safe=PATH_SAFE)
    if "." in path or "%" in path:  # only such a path can hold a dot-segment
        path = remove_dot_segments(path)
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def remove_dot_segments(path: str) -> str:
    """``path`` (absolute, percent-encoded) without its ``.`` and ``..`` segments (RFC 3986 section 5.2.4), each
    also when percent-encoded (``%2e%2e``); a ``..`` never climbs above ``/``, so a path cannot leave the
    origin's base path once joined to it.

    >>> remove_dot_segments("/a/b/../../../other/%2E%2e/x/./")
    '/x/'
    """
    kept: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        dots = segment.replace("%2e", ".").replace("%2E", ".")
        if dots == "..":
            if kept:
                kept.pop()
        elif dots != ".":
            kept.append(segment)
    if segments and segments[-1].replace("%2e", ".").replace("%2E", ".") in (".", ".."):
        kept.append("")  # "/a/b/.." is "/a/": the last segment named a directory
    return "/" + "/".join(kept)


def _forwarded_for(scope: Scope) -> list[tuple[str, str]]:
    client: Any = scope.get("client")
    return [("X-Forwarded-For", str(client[0]))] if client else []
