"""`fanmeter broker` with no services file serves what the admin service configured in the shared database.

The admin service runs in-process (tests/admin_world.py) on a migrated database; the broker is a real
subprocess on the same database, reading it again every 0.2 s here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from sqlalchemy import text

from billing.settings import BillingSettings
from broker.settings import BrokerSettings
from fanmeter import migrate
from kernel.db import make_engine
from tests.admin_world import OWN, World, build_world
from tests.e2e.broker_stack import BrokerNode, broker_node, grip_origin
from tests.stack import free_port, migrated_stack, run_cli, settings_for

pytestmark = pytest.mark.anyio

GRIP_SECRET = "e2e-grip-secret-0123456789abcdef"
FANOUT = "/enabled-products/v1/fanout/services"
ITEM = {"items": [{"channel": "news", "formats": {"http-stream": {"content": "hello from the database\n"}}}]}
# The test origin is on loopback: the admin service and the broker must both be told it may be.
TEST_NETWORKS = "127.0.0.0/8"
UNREACHABLE = "Bad gateway: the origin could not be reached\n"


def create_service(world: World, name: str, type_: str = "compute") -> str:
    created = world.client.post(
        f"/v1/accounts/{OWN}/services", json={"name": name, "type": type_}, headers=world.as_role("engineer")
    )
    assert created.status_code == 201, created.text
    service_id: str = created.json()["id"]
    return service_id


def serve_with_fanout(world: World, service_id: str, origin_port: int) -> None:
    """Give the service a plain-HTTP backend on the test origin and turn Fanout on."""
    backend = {"name": "origin", "address": "127.0.0.1", "port": origin_port, "use_tls": False}
    added = world.client.post(f"/v1/services/{service_id}/backends", json=backend, headers=world.as_role("engineer"))
    assert added.status_code == 201, added.text
    assert world.client.put(f"{FANOUT}/{service_id}", headers=world.as_role("engineer")).status_code == 200


def issue_token(world: World, service_id: str) -> tuple[str, str]:
    """A new publish token of the service: its id and its secret."""
    issued = world.client.post(
        f"/v1/services/{service_id}/publish-tokens", json={"name": "publisher"}, headers=world.as_role("engineer")
    )
    assert issued.status_code == 201, issued.text
    return issued.json()["id"], issued.json()["token"]


@dataclass
class Deployment:
    world: World
    env: dict[str, str]
    broker: BrokerNode
    origin_port: int
    service_id: str
    token: str
    outbox: Path
    origin_keys: Path

    def engineer(self) -> dict[str, str]:
        return self.world.as_role("engineer")

    def publish(self, token: str, service_id: str | None = None) -> httpx.Response:
        url = self.broker.publish_url(service_id or self.service_id)
        return httpx.post(url, json=ITEM, headers={"Fastly-Key": token})

    def get(self, service_id: str, path: str = "/plain") -> httpx.Response:
        return httpx.get(f"{self.broker.url}/s/{service_id}{path}")

    def new_fanout_service(self) -> str:
        """A further Fanout service in front of the same origin, which is told its Grip-Sig key."""
        service_id = create_service(self.world, "another")
        printed = run_cli(self.env, "grip-key", service_id)
        assert printed.returncode == 0, printed.stderr
        with self.origin_keys.open("a") as keys:
            keys.write(printed.stdout.strip() + "\n")
        serve_with_fanout(self.world, service_id, self.origin_port)
        return service_id


def eventually(check: Callable[[], bool], timeout_s: float = 10) -> None:
    """Poll until ``check`` holds: the broker reads the database again every 0.2 s."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the broker did not pick up the change in time"
        time.sleep(0.05)


def _upgrade(env: dict[str, str]) -> None:
    migrate.upgrade(settings_for(env).resolved_database_url)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Compute and Fanout purchased, one Fanout service in front of the gripcontrol origin, a publish token."""
    data_dir = tmp_path_factory.mktemp("brokerdb")
    with migrated_stack(data_dir, _upgrade) as stack_env:
        env = {**stack_env, "FANMETER_GRIP_SECRET": GRIP_SECRET}
        engine = make_engine(settings_for(stack_env).resolved_database_url)
        world = build_world(engine, settings=BillingSettings(backend_allowed_networks=TEST_NETWORKS))
        with world.client:
            for product in ("compute", "fanout"):
                bought = world.client.put(f"/v1/accounts/{OWN}/products/{product}", headers=world.as_role("superuser"))
                assert bought.status_code == 200
            service_id = create_service(world, "first")
            printed = run_cli(env, "grip-key", service_id)
            assert printed.returncode == 0, printed.stderr
            origin_keys = data_dir / "origin-keys"
            with grip_origin(data_dir, key=printed.stdout.strip(), keys_file=origin_keys) as origin:
                port = urlsplit(origin).port or 80
                serve_with_fanout(world, service_id, port)
                _, token = issue_token(world, service_id)
                extra = {
                    "FANMETER_BROKER_RELOAD_SECONDS": "0.2",
                    "FANMETER_BROKER_SHIP": "false",
                    "FANMETER_BACKEND_ALLOWED_NETWORKS": TEST_NETWORKS,
                }
                with broker_node(env, None, "brokerdb", extra) as broker:
                    outbox = BrokerSettings(data_dir=data_dir, broker_node="brokerdb").outbox_path
                    yield Deployment(world, env, broker, port, service_id, token, outbox, origin_keys)
        engine.dispose()


def test_the_origin_validates_grip_sig_with_the_key_fanmeter_grip_key_prints(deployment: Deployment) -> None:
    response = deployment.get(deployment.service_id, "/sig")
    assert (response.status_code, response.text) == (200, "signed\n")


async def test_a_client_of_a_database_service_receives_what_a_publisher_sends_with_its_token(
    deployment: Deployment,
) -> None:
    url = f"{deployment.broker.url}/s/{deployment.service_id}/stream?ch=news"
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url) as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"stream open\n"
        published = await client.post(
            deployment.broker.publish_url(deployment.service_id),
            json=ITEM,
            headers={"Authorization": f"Bearer {deployment.token}"},
        )
        assert (published.status_code, published.text) == (200, "Published\n")
        assert await anext(chunks) == b"hello from the database\n"


def test_a_wrong_token_is_403_and_no_token_401(deployment: Deployment) -> None:
    wrong = deployment.publish("fm_not-a-token-of-this-service")
    missing = httpx.post(deployment.broker.publish_url(deployment.service_id), json=ITEM)
    assert (wrong.status_code, missing.status_code) == (403, 401)
    assert f"not a publish token of service {deployment.service_id}" in wrong.text


def test_a_token_of_another_service_cannot_publish_to_this_one(deployment: Deployment) -> None:
    other = deployment.new_fanout_service()
    _, other_token = issue_token(deployment.world, other)
    eventually(lambda: deployment.publish(other_token, other).status_code == 200)
    assert deployment.publish(other_token).status_code == 403


def test_a_revoked_token_is_refused_within_the_reload_interval(deployment: Deployment) -> None:
    token_id, token = issue_token(deployment.world, deployment.service_id)
    eventually(lambda: deployment.publish(token).status_code == 200)

    revoked = deployment.world.client.delete(
        f"/v1/services/{deployment.service_id}/publish-tokens/{token_id}", headers=deployment.engineer()
    )
    assert revoked.status_code == 200

    eventually(lambda: deployment.publish(token).status_code == 403)
    assert deployment.publish(deployment.token).status_code == 200  # the service's other token still works


def test_turning_fanout_off_refuses_clients_and_publishers_within_the_reload_interval(deployment: Deployment) -> None:
    service_id = deployment.new_fanout_service()
    _, token = issue_token(deployment.world, service_id)
    eventually(lambda: deployment.get(service_id).status_code == 200)

    turned_off = deployment.world.client.delete(f"{FANOUT}/{service_id}", headers=deployment.engineer())
    assert turned_off.status_code == 204

    eventually(lambda: deployment.get(service_id).status_code == 403)
    published = deployment.publish(token, service_id)
    assert (published.status_code, published.text) == (403, f"Fanout is not enabled for service {service_id}\n")


def _close_reasons(outbox: Path, service_id: str) -> dict[str, str]:
    """Transport -> reason of the service's metered closes in the node's outbox (read-only)."""
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM outbox_event").fetchall()
    events = [json.loads(payload) for (payload,) in rows]
    ours = [e for e in events if e["data"]["service_id"] == service_id]
    transports = {e["data"]["connection_id"]: e["data"]["transport"] for e in ours if e["type"].endswith(".open")}
    return {transports[e["data"]["connection_id"]]: e["data"]["reason"] for e in ours if e["type"].endswith(".close")}


async def test_turning_fanout_off_ends_the_connections_already_held(deployment: Deployment) -> None:
    service_id = deployment.new_fanout_service()
    eventually(lambda: deployment.get(service_id).status_code == 200)
    base = f"{deployment.broker.url}/s/{service_id}"
    ws_url = f"ws://127.0.0.1:{deployment.broker.port}/s/{service_id}/ws?ch=off"
    async with httpx.AsyncClient(timeout=20) as client, AsyncExitStack() as stack:
        stream = await stack.enter_async_context(client.stream("GET", f"{base}/sse?ch=off"))
        chunks = stream.aiter_raw()
        assert await anext(chunks) == b"event: open\ndata: ready\n\n"
        socket = await stack.enter_async_context(websockets.connect(ws_url))
        assert await socket.recv() == "welcome"  # the origin's greeting: the socket is open and subscribed
        poll = asyncio.ensure_future(client.get(f"{base}/poll?ch=off&timeout=30"))
        await asyncio.sleep(0.5)  # the long-poll is held

        turned_off = deployment.world.client.delete(f"{FANOUT}/{service_id}", headers=deployment.engineer())
        assert turned_off.status_code == 204
        off_at = time.monotonic()

        answered = await asyncio.wait_for(poll, 10)
        assert (answered.status_code, answered.text) == (403, f"Fanout is not enabled for service {service_id}\n")
        assert [chunk async for chunk in chunks] == []  # the stream ended, nothing more came
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert time.monotonic() - off_at < 5  # one reload (0.2 s here) and the closes, with room for a busy machine
        refused = await client.get(f"{base}/sse?ch=off")
        assert (refused.status_code, refused.text) == (403, f"Fanout is not enabled for service {service_id}\n")

    expected = {"sse": "Fanout disabled", "websocket": "Fanout disabled", "long-poll": "Fanout disabled"}
    await asyncio.sleep(0.5)  # closes are group-committed to the outbox a moment later
    assert _close_reasons(deployment.outbox, service_id) == expected


def test_a_delivery_service_is_unknown_to_the_broker(deployment: Deployment) -> None:
    delivery = create_service(deployment.world, "cdn", "delivery")
    compute = deployment.new_fanout_service()  # created after it: once it is served, so would the other be
    eventually(lambda: deployment.get(compute).status_code == 200)
    response = deployment.get(delivery)
    assert (response.status_code, response.text) == (404, f"Unknown service {delivery}\n")


def test_without_a_services_file_the_broker_refuses_to_start_without_a_grip_secret(tmp_path: Path) -> None:
    env = {"FANMETER_DATA_DIR": str(tmp_path), "FANMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    started = run_cli({**env, "FANMETER_GRIP_SECRET": "changeme"}, "broker", "--port", str(free_port()), timeout=60)
    assert started.returncode != 0
    assert "FANMETER_GRIP_SECRET looks like a placeholder" in started.stderr


def test_without_a_services_file_the_broker_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    env = {"FANMETER_DATA_DIR": str(tmp_path), "FANMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    started = run_cli({**env, "FANMETER_GRIP_SECRET": GRIP_SECRET}, "broker", "--port", str(free_port()), timeout=60)
    assert started.returncode != 0
    assert "cannot read services from the database" in started.stderr and "fanmeter db upgrade" in started.stderr


# Issue 15, finding 2: an account's backend may not reach loopback, private or metadata addresses, judged
# again when the broker resolves the name (the admin service judged it at configuration).


@dataclass
class Listener:
    """A TCP port on every interface that counts the connections made to it (and answers none)."""

    port: int
    accepted: list[str]


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = socket.create_server(("0.0.0.0", 0))
    found = Listener(server.getsockname()[1], [])

    def serve() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            found.accepted.append(peer[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield found
    server.close()


@pytest.fixture(scope="module")
def strict_broker(deployment: Deployment) -> Iterator[BrokerNode]:
    """A broker on the same database without FANMETER_BACKEND_ALLOWED_NETWORKS: every origin here is refused."""
    extra = {"FANMETER_BROKER_RELOAD_SECONDS": "0.2", "FANMETER_BROKER_SHIP": "false"}
    with broker_node(deployment.env, None, "brokerdb-strict", extra) as broker:
        yield broker


def set_backend(deployment: Deployment, service_id: str, **columns: str) -> None:
    """Write a backend's columns as a row the admin service did not check would hold them (older rows, or
    a name that resolved elsewhere when it was checked)."""
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with deployment.world.engine.begin() as conn:
        conn.execute(text(f"UPDATE backend SET {assignments} WHERE service_id = :sid"), {**columns, "sid": service_id})


def test_an_origin_on_a_refused_address_is_a_502_and_never_connected_to(
    deployment: Deployment, strict_broker: BrokerNode, listener: Listener
) -> None:
    service_id = create_service(deployment.world, "loopback")
    serve_with_fanout(deployment.world, service_id, listener.port)
    eventually(lambda: httpx.get(f"{strict_broker.url}/s/{service_id}/x").status_code != 404)
    response = httpx.get(f"{strict_broker.url}/s/{service_id}/metrics")
    assert (response.status_code, response.text) == (502, UNREACHABLE)
    assert httpx.get(f"{strict_broker.url}/s/{deployment.service_id}/sig").text == UNREACHABLE
    assert listener.accepted == []
    assert deployment.get(deployment.service_id, "/sig").text == "signed\n"  # allowed there: 127.0.0.0/8


def test_a_host_name_resolving_to_a_refused_address_is_refused_when_the_broker_connects(
    deployment: Deployment, strict_broker: BrokerNode, listener: Listener
) -> None:
    name = socket.gethostname()
    resolved = {info[4][0] for info in socket.getaddrinfo(name, listener.port, type=socket.SOCK_STREAM)}
    if any(ipaddress.ip_address(a).is_global for a in resolved):
        pytest.skip(f"this machine's name {name} resolves to a public address {resolved}")
    service_id = create_service(deployment.world, "rebinding")
    serve_with_fanout(deployment.world, service_id, listener.port)
    set_backend(deployment, service_id, address=name)  # public when checked; loopback or private now
    eventually(lambda: httpx.get(f"{strict_broker.url}/s/{service_id}/x").status_code != 404)
    response = httpx.get(f"{strict_broker.url}/s/{service_id}/healthz")
    assert (response.status_code, response.text) == (502, UNREACHABLE)
    assert listener.accepted == []


@pytest.mark.parametrize(
    "columns",
    [{"address": "127.0.0.1:18480/v1#"}, {"address": "user:pw@127.0.0.1"}, {"override_host": "a.example\r\nX: y"}],
)
def test_a_backend_whose_address_is_not_one_is_not_served_and_never_a_500(
    deployment: Deployment, columns: dict[str, str]
) -> None:
    service_id = deployment.new_fanout_service()
    eventually(lambda: deployment.get(service_id).status_code == 200)
    set_backend(deployment, service_id, **columns)
    eventually(lambda: deployment.get(service_id).status_code == 404)
    response = deployment.get(service_id)
    assert (response.status_code, response.text) == (404, f"Unknown service {service_id}\n")
    assert "pw" not in response.text
