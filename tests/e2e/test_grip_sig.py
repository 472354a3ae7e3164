"""``Grip-Sig``: the demo origin (`fanmeter up`'s) and the tests' gripcontrol origin answer only their broker.

Through a real `fanmeter broker`, a service whose GRIP key is the origin's is served; one whose key
is not is refused by the origin (403, relayed). Straight to each origin (what a client that found
the origin's address would do), no signature, a forged one, an expired one, one of another issuer
and an unsigned (``alg: none``) one are 403; one signed as the broker signs is served.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Iterator

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from broker.origin.client import GRIP_SIG_ISSUER, grip_sig
from fanmeter.demo_origin import KEY_VARIABLE
from tests.e2e.broker_stack import GRIP_KEY, BrokerNode, broker_node, running
from tests.stack import free_port

DEMO_KEY = "demo-origin-key-for-the-grip-sig-test"


@pytest.fixture(scope="module")
def demo_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real demo origin, as `fanmeter up` starts it, with its key."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "fanmeter.demo_origin:app", "--port", str(port), "--log-level", "warning"]
    log = tmp_path_factory.mktemp("demo-origin") / "origin.log"
    with running(args, {KEY_VARIABLE: DEMO_KEY}, port, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def origins(demo_origin: str, origin_url: str) -> dict[str, tuple[str, str, str]]:
    """name -> (origin URL, its key, a path it serves plainly)."""
    return {"demo": (demo_origin, DEMO_KEY, "/"), "gripcontrol": (origin_url, GRIP_KEY, "/plain")}


@pytest.fixture(scope="module")
def signing_broker(
    broker_stack_env: dict[str, str], origins: dict[str, tuple[str, str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerNode]:
    base = {"account_id": "acct-sig", "publish_tokens": ["t"], "fanout_enabled": True}
    services = []
    for name, (url, key, _) in origins.items():
        services.append({**base, "service_id": f"svc-{name}", "origin": url, "grip_key": key})
        services.append({**base, "service_id": f"svc-{name}-wrong-key", "origin": url, "grip_key": key + "-not"})
    config = tmp_path_factory.mktemp("grip-sig") / "services.json"
    config.write_text(json.dumps({"services": services}))
    with broker_node(broker_stack_env, config, "e2e-grip-sig", {"FANMETER_BROKER_SHIP": "false"}) as node:
        yield node


@pytest.mark.parametrize("name", ["demo", "gripcontrol"])
def test_the_broker_signing_with_the_services_key_is_served_and_with_another_key_refused(
    signing_broker: BrokerNode, origins: dict[str, tuple[str, str, str]], name: str
) -> None:
    path = origins[name][2]
    served = httpx.get(f"{signing_broker.url}/s/svc-{name}{path}")
    refused = httpx.get(f"{signing_broker.url}/s/svc-{name}-wrong-key{path}")

    assert served.status_code == 200 and "refused" not in served.text
    assert refused.status_code == 403 and refused.text.startswith("Grip-Sig refused")


def _signatures(key: str) -> dict[str, str | None]:
    with warnings.catch_warnings():  # the suite's gripcontrol key is short: PyJWT warns, and warnings are errors
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return _tokens(key, int(time.time()))


def _tokens(key: str, now: int) -> dict[str, str | None]:
    return {
        "none": None,
        "forged": grip_sig("a key the attacker guessed, long enough for HS256", now),
        "expired": jwt.encode({"iss": GRIP_SIG_ISSUER, "exp": now - 5}, key, algorithm="HS256"),
        "wrong issuer": jwt.encode({"iss": "mallory", "exp": now + 3600}, key, algorithm="HS256"),
        "no issuer": jwt.encode({"exp": now + 3600}, key, algorithm="HS256"),
        "unsigned": jwt.encode({"iss": GRIP_SIG_ISSUER, "exp": now + 3600}, None, algorithm="none"),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("name", ["demo", "gripcontrol"])
@pytest.mark.parametrize("kind", ["none", "forged", "expired", "wrong issuer", "no issuer", "unsigned", "garbage"])
def test_a_request_straight_to_the_origin_without_the_brokers_signature_is_403(
    origins: dict[str, tuple[str, str, str]], name: str, kind: str
) -> None:
    url, key, path = origins[name]
    token = _signatures(key)[kind]
    response = httpx.get(url + path, headers={"Grip-Sig": token} if token else {})

    assert (response.status_code, response.text.startswith("Grip-Sig refused")) == (403, True), response.text
    assert "Grip-Hold" not in response.headers


@pytest.mark.parametrize("name", ["demo", "gripcontrol"])
def test_a_request_signed_as_the_broker_signs_is_served_by_the_origin(
    origins: dict[str, tuple[str, str, str]], name: str
) -> None:
    url, key, path = origins[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = grip_sig(key, time.time())
    response = httpx.get(url + path, headers={"Grip-Sig": token})

    assert response.status_code == 200 and "refused" not in response.text


def test_the_demo_origin_says_why_it_refuses(origins: dict[str, tuple[str, str, str]]) -> None:
    url, key, _ = origins["demo"]
    reasons = {kind: httpx.get(url, headers={"Grip-Sig": t} if t else {}).text for kind, t in _signatures(key).items()}

    assert "carries none" in reasons["none"]
    assert "signature does not verify" in reasons["forged"]
    assert "expired" in reasons["expired"]
    assert "issued by 'mallory'" in reasons["wrong issuer"]
    assert all(key not in reason for reason in reasons.values())  # never echoes the key
