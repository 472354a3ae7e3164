"""The broker's composition root: settings, services, outbox, fan-out, shipper."""

from __future__ import annotations

from broker.app import Broker
from broker.config import BrokerConfig, load_config
from broker.exceptions import ConfigError
from broker.fanout import Fanout, LocalFanout, RedisFanout
from broker.hub import Hub
from broker.meter import Meter
from broker.origin import Origins
from broker.outbox import OutboxStore, OutboxWriter
from broker.settings import BrokerSettings
from broker.shipper import Shipper


def build(settings: BrokerSettings, config: BrokerConfig | None = None, ship: bool = True) -> Broker:
    """A broker for ``settings``; ``config`` defaults to the services file the settings name."""
    if config is None:
        if settings.broker_config is None:
            raise ConfigError("no services configured: set FANMETER_BROKER_CONFIG or pass --config")
        config = load_config(settings.broker_config)
    settings.ensure_data_dir()
    hub = Hub()
    writer = OutboxWriter(OutboxStore(settings.outbox_path))
    fanout: Fanout = RedisFanout(hub, settings.redis_url) if settings.redis_url else LocalFanout(hub)
    return Broker(
        config=config,
        hub=hub,
        meter=Meter(writer, settings.broker_node),
        writer=writer,
        origins=Origins(),
        fanout=fanout,
        shipper=_shipper(settings) if ship and settings.broker_ship else None,
        queue_size=settings.broker_queue_size,
        alive_interval_s=float(settings.alive_interval_seconds),
        flush_interval_s=settings.broker_delivery_flush_ms / 1000,
    )


def _shipper(settings: BrokerSettings) -> Shipper:
    from broker.pipeline import Pipeline  # Celery and the metering database only where shipping happens

    pipeline = Pipeline(settings)
    return Shipper(
        OutboxStore(settings.outbox_path),
        settings.broker_node,
        pipeline.send,
        pipeline.recorded,
        settings.broker_ship_batch,
        settings.broker_ship_interval_ms / 1000,
        settings.broker_resend_seconds,
    )


def app_from_environment() -> Broker:
    """Uvicorn's factory: ``uvicorn --factory broker.bootstrap:app_from_environment``."""
    return build(BrokerSettings())
