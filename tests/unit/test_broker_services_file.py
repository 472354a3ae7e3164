"""The services file: TOML or JSON, validated with reasons an operator can act on."""

import json

import pytest

from broker.exceptions import ConfigError
from broker.services.file import load_config, parse_config
from broker.services.model import ServiceConfig

SERVICE = {"service_id": "s1", "account_id": "a1", "origin": "https://o.example/", "publish_tokens": ["t"],
           "grip_key": "k", "fanout_enabled": True, "hosts": ["S1.Example"]}  # fmt: skip


def test_a_toml_file_gives_service_configs(tmp_path):
    path = tmp_path / "services.toml"
    path.write_text('[[services]]\nservice_id="s1"\naccount_id="a1"\norigin="http://127.0.0.1:9"\n'
                    'publish_tokens=["t"]\ngrip_key="k"\nfanout_enabled=true\n')  # fmt: skip
    assert load_config(path).services == {"s1": ServiceConfig("s1", "a1", "http://127.0.0.1:9", ("t",), "k", True)}


def test_a_json_file_gives_the_same_and_hosts_route_case_insensitively_without_port(tmp_path):
    path = tmp_path / "services.json"
    path.write_text(json.dumps({"services": [SERVICE]}))
    config = load_config(path)
    assert config.services["s1"].origin == "https://o.example"
    assert config.by_host("s1.example:8080") is config.services["s1"]
    assert config.by_host("other.example") is None
    assert config.services["s1"].cross_origin is False  # automatic CORS is off unless asked for
    cors = parse_config({"services": [{**SERVICE, "cross_origin": True}]})
    assert cors.services["s1"].cross_origin is True


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({}, '"services" list'),
        ({"services": [1]}, "must be a table/object"),
        ({"services": [{**SERVICE, "account_id": ""}]}, "account_id must be a non-empty string"),
        ({"services": [{**SERVICE, "origin": "ftp://x"}]}, "http:// or https:// URL"),
        ({"services": [{**SERVICE, "publish_tokens": "t"}]}, "publish_tokens must be a list"),
        ({"services": [{**SERVICE, "fanout_enabled": "yes"}]}, "true or false"),
        ({"services": [{**SERVICE, "hosts": [1]}]}, "list of host names"),
        ({"services": [{**SERVICE, "cross_origin": "on"}]}, "cross_origin must be true or false"),
        ({"services": [SERVICE, SERVICE]}, "configured twice"),
    ],
)
def test_invalid_configs_are_refused_with_the_reason(doc, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_config(doc)


def test_unreadable_and_unparsable_files_are_refused_with_the_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read broker config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[services")
    with pytest.raises(ConfigError, match="not valid toml"):
        load_config(bad)
