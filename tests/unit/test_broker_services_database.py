"""Services from the admin service's rows: mapping, GRIP keys, hashed publish tokens, reloading."""

import asyncio
import hashlib
import hmac

import pytest
from pydantic import SecretStr

from broker.app import check_publish_token
from broker.exceptions import ConfigError
from broker.origin.client import Origins
from broker.origin.http11 import Endpoint, RawReply, StreamIf
from broker.services.model import BrokerConfig, ServiceConfig
from broker.services.refresh import keep_fresh
from broker.services.rows import BackendRow, ServiceRow, TokenRow, grip_key, origin_url, service_configs
from broker.settings import BrokerSettings

SECRET = "a-broker-wide-secret-of-some-length"


def backend(name: str = "origin", service_id: str = "svc_1", **fields: object) -> BackendRow:
    values: dict[str, object] = {"address": "origin.example", "use_tls": False, "override_host": None}
    values |= {"settings": {}, "tls_status": "not_applicable", **fields}
    return BackendRow(service_id, name, **values)  # type: ignore[arg-type]


def test_the_grip_key_is_the_hex_hmac_sha256_of_the_service_id_under_the_secret() -> None:
    expected = hmac.new(SECRET.encode(), b"svc_1", hashlib.sha256).hexdigest()
    assert grip_key(SECRET, "svc_1") == expected
    assert grip_key(SECRET, "svc_2") != expected and grip_key("another-secret-entirely", "svc_1") != expected


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({}, "http://origin.example:80"),
        ({"use_tls": True}, "https://origin.example:443"),
        ({"settings": {"port": 8080}}, "http://origin.example:8080"),
        ({"use_tls": True, "settings": {"port": 8443}}, "https://origin.example:8443"),
        ({"address": "::1", "settings": {"port": 9000}}, "http://[::1]:9000"),
        ({"settings": {"port": True}}, "http://origin.example:80"),
    ],
)
def test_a_backend_becomes_an_origin_url_with_its_scheme_and_port(fields: dict[str, object], url: str) -> None:
    assert origin_url(backend(**fields)) == url


def test_a_fanout_service_goes_to_its_first_backend_by_name_with_its_tokens_and_override_host() -> None:
    config, problems = service_configs(
        [ServiceRow("svc_1", "acc_1", True)],
        [backend("z-second", settings={"port": 2}), backend("a-first", override_host="app.example", use_tls=True)],
        [TokenRow("svc_1", "h2", "tok_2"), TokenRow("svc_1", "h1", "tok_1"), TokenRow("svc_other", "h3", "tok_3")],
        SECRET,
    )
    assert problems == []
    assert config.services == {
        "svc_1": ServiceConfig(
            service_id="svc_1",
            account_id="acc_1",
            origin="https://origin.example:443",
            publish_tokens=(),
            grip_key=grip_key(SECRET, "svc_1"),
            fanout_enabled=True,
            publish_token_hashes=("h1", "h2"),
            publish_token_ids=("tok_1", "tok_2"),  # each hash's token id, in the same order
            origin_host="app.example",
            guarded=True,  # an account's backend: its addresses are judged at connect time
        )
    }


def test_a_compute_service_with_fanout_off_is_known_but_not_enabled() -> None:
    config, problems = service_configs([ServiceRow("svc_off", "acc_1", False)], [], [TokenRow("svc_off", "h")], SECRET)
    assert problems == []
    assert config.services["svc_off"].fanout_enabled is False
    assert config.services["svc_off"].publish_token_hashes == ("h",)


def test_a_fanout_service_without_a_backend_or_with_an_untrusted_one_is_not_served_and_says_why() -> None:
    config, problems = service_configs(
        [ServiceRow("svc_none", "a", True), ServiceRow("svc_bad", "a", True)],
        [backend(service_id="svc_bad", use_tls=True, tls_status="untrusted")],
        [],
        SECRET,
    )
    assert config.services == {}
    assert problems == [
        "service svc_bad: backend 'origin' has an untrusted TLS certificate: not served",
        "service svc_none has Fanout on but no backend: not served",
    ]


def test_a_token_whose_sha256_is_a_publish_token_hash_of_the_service_may_publish() -> None:
    token = "fm_the-secret"
    service = ServiceConfig(
        "s", "a", "http://o", (), "k", True, publish_token_hashes=(hashlib.sha256(b"fm_the-secret").hexdigest(),)
    )
    assert check_publish_token(service, (("Authorization", f"Bearer {token}"),)) is None
    assert check_publish_token(service, (("Fastly-Key", token),)) is None
    refusal = check_publish_token(service, (("Fastly-Key", service.publish_token_hashes[0]),))
    assert refusal is not None and refusal[0] == 403


@pytest.mark.parametrize("secret", [None, "", "changeme", "short-secret"])
def test_an_unset_short_or_placeholder_grip_secret_is_refused(secret: str | None) -> None:
    settings = BrokerSettings(grip_secret=SecretStr(secret) if secret is not None else None)
    with pytest.raises(ConfigError, match="FANMETER_GRIP_SECRET"):
        settings.required_grip_secret()


def test_a_failed_reload_keeps_the_last_good_services_and_the_next_success_applies() -> None:
    fresh = BrokerConfig({})
    outcomes: list[BrokerConfig | Exception] = [RuntimeError("database away"), fresh]
    applied: list[BrokerConfig] = []
    done = asyncio.Event()

    def load() -> BrokerConfig:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def apply(config: BrokerConfig) -> None:
        applied.append(config)
        done.set()

    async def run() -> None:
        task = asyncio.create_task(keep_fresh(load, apply, 0.001))
        await asyncio.wait_for(done.wait(), 5)
        task.cancel()

    asyncio.run(run())
    assert applied == [fresh]


class RecordingClient:
    """Stands in for the HTTP layer (tested on real sockets in tests/integration/test_broker_origin_http11.py)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Endpoint, str, str, list[tuple[str, str]], bytes]] = []

    async def request(
        self, endpoint: Endpoint, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
        _stream_if: StreamIf | None = None,
    ) -> RawReply:  # fmt: skip
        self.seen.append((endpoint, method, target, headers, body))
        return RawReply(200, "OK", (), b"ok")

    async def close(self) -> None:
        return None


def test_an_override_host_is_the_host_the_origin_is_asked_for_and_its_tls_server_name() -> None:
    recording = RecordingClient()

    async def run() -> None:
        origins = Origins()
        await origins.close()
        origins._client = recording  # type: ignore[assignment]
        key = grip_key(SECRET, "s")
        service = ServiceConfig("s", "a", "https://10.0.0.1:8443", (), key, True, origin_host="app.example")
        await origins.request(service, "GET", "/path", [("Accept", "*/*")], b"")

    asyncio.run(run())
    ((endpoint, method, target, headers, _body),) = recording.seen
    assert (endpoint, method, target) == (Endpoint("https", "10.0.0.1", 8443, "app.example"), "GET", "/path")
    assert ("Host", "app.example") in headers
