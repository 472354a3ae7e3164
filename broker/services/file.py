"""The services a broker serves, read from a TOML or JSON file (``FANMETER_BROKER_CONFIG`` or ``--config``).

The file is one source of ``ServiceConfig`` values; the other is the admin service's database
(``broker/services/database.py``), used when no file is given (docs/decisions.md, "Broker").

    [[services]]
    service_id = "svc-1"
    account_id = "acme"
    origin = "https://origin.example.com"   # https is verified against the public CA bundle
    publish_tokens = ["a-secret-token"]
    grip_key = "a-shared-signing-key"        # signs Grip-Sig (JWT HS256)
    fanout_enabled = true
    hosts = ["svc-1.example.com"]            # optional: route by Host as well as /s/svc-1/
    cross_origin = false                     # optional: automatic CORS, as Pushpin's auto_cross_origin
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.exceptions import ConfigError
from broker.services.model import BrokerConfig, ServiceConfig


def load_config(path: Path) -> BrokerConfig:
    """Read and validate the services file (``.toml`` or ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read broker config {path}: {error.strerror}") from None
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"broker config {path} is not valid {path.suffix[1:] or 'JSON'}: {error}") from None
    return parse_config(doc)


def parse_config(doc: Any) -> BrokerConfig:
    """Validate a decoded config document: ``{"services": [ {...}, ... ]}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        raise ConfigError('broker config must have a "services" list')
    services: dict[str, ServiceConfig] = {}
    for index, raw in enumerate(doc["services"]):
        service = _service(raw, f"services[{index}]")
        if service.service_id in services:
            raise ConfigError(f"service {service.service_id!r} is configured twice")
        services[service.service_id] = service
    return BrokerConfig(services)


def _service(raw: Any, where: str) -> ServiceConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table/object")
    text = {name: _text(raw, name, where) for name in ("service_id", "account_id", "origin", "grip_key")}
    _check_origin(text["origin"], f"{where}.origin")
    tokens = raw.get("publish_tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise ConfigError(f"{where}.publish_tokens must be a list of non-empty strings")
    enabled = raw.get("fanout_enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.fanout_enabled must be true or false")
    cross_origin = raw.get("cross_origin", False)
    if not isinstance(cross_origin, bool):
        raise ConfigError(f"{where}.cross_origin must be true or false")
    hosts = raw.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(f"{where}.hosts must be a list of host names")
    return ServiceConfig(
        service_id=text["service_id"],
        account_id=text["account_id"],
        origin=text["origin"].rstrip("/"),
        publish_tokens=tuple(tokens),
        grip_key=text["grip_key"],
        fanout_enabled=enabled,
        hosts=tuple(h.lower() for h in hosts),
        cross_origin=cross_origin,
    )


def _check_origin(url: str, where: str) -> None:
    """An origin is ``http[s]://host[:port][/base]``: no credentials, query or fragment, a valid port.

    Credentials (``user:password@``) are refused rather than sent: the broker never sends them,
    and an error must never echo them (docs/decisions.md, "Broker security"), so none of these
    messages quotes the URL once it may hold them.
    """
    try:
        origin = urlsplit(url)
        origin.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        raise ConfigError(f"{where} is not a valid URL (check its host and port)") from None
    if "@" in origin.netloc:
        raise ConfigError(f"{where} must not carry credentials (user:password@): the broker does not send them")
    if origin.scheme not in ("http", "https") or not origin.hostname:
        raise ConfigError(f"{where} must be an http:// or https:// URL, got {url!r}")
    if origin.query or origin.fragment or "?" in url or "#" in url:
        raise ConfigError(f"{where} must not have a query or a fragment, got {url!r}")


def _text(raw: dict[str, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name} must be a non-empty string")
    return value
