"""Which held connections a reload of the services ends, and what their clients are told."""

from dataclasses import replace

from broker.app import no_longer_served
from broker.services.model import BrokerConfig, ServiceConfig
from broker.transports.connection import Ending

SERVED = ServiceConfig("s1", "a1", "https://o.example", ("t",), "k", True)


def test_a_service_still_served_ends_nothing():
    assert no_longer_served(BrokerConfig({"s1": SERVED}), "s1") is None


def test_fanout_turned_off_ends_the_services_connections_as_a_new_request_would_be_refused():
    config = BrokerConfig({"s1": replace(SERVED, fanout_enabled=False)})
    assert no_longer_served(config, "s1") == Ending("Fanout disabled", 403, "Fanout is not enabled for service s1")


def test_a_service_gone_from_the_reload_ends_its_connections_as_unknown():
    assert no_longer_served(BrokerConfig({}), "s1") == Ending("service removed", 404, "Unknown service s1")
