"""The broker's composition root: settings, services, outbox, fan-out, shipper."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from broker.app import Broker
from broker.exceptions import ConfigError
from broker.fanout.hub import Hub
from broker.fanout.nodes import Fanout, LocalFanout, RedisFanout
from broker.grip.reliability import LastIds, Sequencer
from broker.limits import BrokerLimits, HeldConnections
from broker.metrics import BrokerMetrics, Tally
from broker.origin.client import Origins
from broker.services.database import DatabaseServices
from broker.services.file import load_config
from broker.services.model import BrokerConfig
from broker.settings import BrokerSettings
from broker.usage.meter import Meter
from broker.usage.outbox import OutboxStore, OutboxWriter
from broker.usage.shipper import Shipper
from kernel.db import make_engine, read_only
from kernel.http_limits import AddressCounts, HttpLimits, limited_protocol
from kernel.rate_limit import Rate, RateLimiter


def build(settings: BrokerSettings, config: BrokerConfig | None = None, ship: bool = True) -> Broker:
    """A broker for ``settings``; ``config`` defaults to the services file the settings name, else the database's."""
    reload = None
    if config is None and settings.broker_config is not None:
        config = load_config(settings.broker_config)
    elif config is None:
        reload = database_services(settings)
        config = _first_load(reload, settings)
    settings.ensure_data_dir()
    hub = Hub(Sequencer(LastIds(), settings.broker_message_wait_ms / 1000, settings.broker_id_cache_ttl_seconds))
    writer = OutboxWriter(OutboxStore(settings.outbox_path), settings.broker_outbox_max_events)
    fanout: Fanout = RedisFanout(hub, settings.redis_url) if settings.redis_url else LocalFanout(hub)
    tally = Tally()
    limits = node_limits(settings)
    meter = Meter(writer, settings.broker_node, tally=tally)
    return Broker(
        config=config,
        hub=hub,
        meter=meter,
        writer=writer,
        origins=Origins(allowed_networks=settings.allowed_networks, tally=tally),
        fanout=fanout,
        shipper=_shipper(settings) if ship and settings.broker_ship else None,
        queue_size=settings.broker_queue_size,
        alive_interval_s=float(settings.alive_interval_seconds),
        flush_interval_s=settings.broker_delivery_flush_ms / 1000,
        reload=reload,
        reload_interval_s=settings.broker_reload_seconds,
        body_timeout_s=settings.broker_body_timeout_seconds,
        metrics_port=settings.broker_metrics_port,
        metrics=BrokerMetrics(tally, meter, settings.outbox_path, limits),
        limits=limits,
    )


def node_limits(settings: BrokerSettings) -> BrokerLimits:
    """The node's per-token publish rate, held connections per service and connections per address."""
    rate = Rate(settings.broker_publish_rate_per_second, settings.broker_publish_burst)
    held = HeldConnections(settings.broker_max_held_per_service, settings.broker_max_held_overrides)
    addresses = AddressCounts(settings.broker_max_connections_per_address, settings.connection_limit_exempt)
    return BrokerLimits(RateLimiter(rate), held, addresses)


def run(app: Broker, settings: BrokerSettings, host: str, port: int) -> None:
    """Serve ``app`` on the client port and, with ``FANMETER_BROKER_METRICS_PORT``, on the metrics listener
    too: one uvicorn server on both sockets, so both share the event loop, the head limits and the shutdown."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, **server_options(settings, app.limits.addresses))
    sockets = None
    if settings.broker_metrics_port is not None:
        metrics = uvicorn.Config(app, host=settings.broker_metrics_host, port=settings.broker_metrics_port,
                                 log_level=config.log_level)  # fmt: skip
        sockets = [config.bind_socket(), metrics.bind_socket()]
    try:
        uvicorn.Server(config).run(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn re-raises it once the server has stopped (uvicorn.run hides it too)
        pass


def server_options(settings: BrokerSettings, addresses: AddressCounts | None = None) -> dict[str, Any]:
    """Uvicorn's options for a broker: httptools with the limits on heads, bodies and connections per
    client address (``kernel.http_limits``), WebSocket messages up to ``FANMETER_BROKER_MAX_WS_MESSAGE_BYTES``
    (closed with 1009 beyond)."""
    http_limits = HttpLimits(
        max_head_bytes=settings.broker_max_header_bytes,
        max_headers=settings.broker_max_headers,
        head_timeout_s=settings.broker_header_timeout_seconds,
        body_timeout_s=settings.broker_body_timeout_seconds,
        max_connections_per_address=settings.broker_max_connections_per_address,
        exempt_networks=settings.connection_limit_exempt,
    )
    return {
        "loop": "uvloop",
        "http": limited_protocol(http_limits, addresses),
        "ws": "websockets-sansio",
        "ws_max_size": settings.broker_max_ws_message_bytes,
        "lifespan": "on",
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
    }


def database_services(settings: BrokerSettings) -> DatabaseServices:
    """The admin service's services in ``FANMETER_DATABASE_URL`` as a reloadable source."""
    secret = settings.required_grip_secret()
    settings.ensure_data_dir()  # the embedded default's SQLite file lives there
    return DatabaseServices(read_only(make_engine(settings.resolved_database_url)), secret)


def _first_load(source: DatabaseServices, settings: BrokerSettings) -> BrokerConfig:
    try:
        return source()
    except SQLAlchemyError as error:
        url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        raise ConfigError(
            f"cannot read services from the database {url} (run `fanmeter db upgrade`, or give --config): "
            f"{type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None


def _shipper(settings: BrokerSettings) -> Shipper:
    from metering.client import PipelineClient  # Celery and the metering database only where shipping happens

    pipeline = PipelineClient.from_settings(settings)
    return Shipper(
        OutboxStore(settings.outbox_path),
        settings.broker_node,
        pipeline.submit,
        pipeline.recorded,
        settings.broker_ship_batch,
        settings.broker_ship_interval_ms / 1000,
        settings.broker_resend_seconds,
    )


def app_from_environment() -> Broker:
    """Uvicorn's factory: ``uvicorn --factory broker.bootstrap:app_from_environment``."""
    return build(BrokerSettings())
