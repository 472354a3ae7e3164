"""The publish API's answers (DESIGN.md "Publish API") and the origin TLS rule, over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_stack import TOKEN, BrokerNode, broker_node, grip_origin, services_file

ITEM = {"channel": "c", "formats": {"http-stream": {"content": "x"}}}


def post(
    broker: BrokerNode, body: bytes | dict[str, object], service_id: str = "svc-a", **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(broker.publish_url(service_id), content=content, headers=headers)


def test_a_valid_publish_with_a_bearer_token_answers_published(broker: BrokerNode) -> None:
    response = post(broker, {"items": [ITEM]}, Authorization=f"Bearer {TOKEN}")
    assert (response.status_code, response.text) == (200, "Published\n")


def test_the_token_may_come_in_fastly_key(broker: BrokerNode) -> None:
    assert post(broker, {"items": [ITEM]}, **{"Fastly-Key": TOKEN}).status_code == 200


def test_no_token_is_401_and_a_wrong_token_is_403(broker: BrokerNode) -> None:
    missing = post(broker, {"items": [ITEM]})
    wrong = post(broker, {"items": [ITEM]}, Authorization="Bearer not-the-token")
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert "publish token" in missing.text and "not a publish token of service svc-a" in wrong.text


def test_a_token_of_another_service_cannot_publish_to_this_one(broker: BrokerNode) -> None:
    assert post(broker, {"items": [ITEM]}, "svc-off", Authorization="Bearer someone-else").status_code == 403


def test_a_service_without_fanout_cannot_be_published_to(broker: BrokerNode) -> None:
    response = post(broker, {"items": [ITEM]}, "svc-off", Authorization=f"Bearer {TOKEN}")
    assert (response.status_code, response.text) == (403, "Fanout is not enabled for service svc-off\n")


def test_an_unknown_service_is_404(broker: BrokerNode) -> None:
    assert post(broker, {"items": [ITEM]}, "nope", Authorization=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not valid JSON"),
        (b'{"items": [{"formats": {"http-stream": {"content": "x"}}}]}', "items[0].channel must be a non-empty string"),
        (b'{"items": [{"channel": "c", "formats": {"http-stream": {}}}]}', "needs content or content-bin"),
        (b'{"items": [{"channel": "c"}]}', "items[0] has no formats"),
    ],
)
def test_an_invalid_body_is_400_with_the_reason(broker: BrokerNode, body: bytes, reason: str) -> None:
    response = post(broker, body, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 400
    assert response.text.startswith("Invalid format: ") and reason in response.text


def test_a_body_over_one_megabyte_is_413(broker: BrokerNode) -> None:
    big = {"items": [{"channel": "c", "formats": {"http-stream": {"content": "x" * 1_000_001}}}]}
    assert post(broker, big, Authorization=f"Bearer {TOKEN}").status_code == 413


def test_publishing_needs_post(broker: BrokerNode) -> None:
    assert httpx.get(broker.publish_url(), headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.fixture(scope="module")
def tls_broker(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerNode]:
    tmp = tmp_path_factory.mktemp("tls")
    with grip_origin(tmp, tls=True) as tls_url:
        config = services_file(Path(tmp) / "services.json", origin_url, tls_origin=tls_url)
        with broker_node(broker_stack_env, config, "e2e-tls") as node:
            yield node


def test_a_self_signed_origin_is_refused_with_a_clear_502(tls_broker: BrokerNode) -> None:
    response = httpx.get(f"{tls_broker.url}/s/svc-tls/plain")
    assert response.status_code == 502
    assert "does not chain to a public CA" in response.text
