"""Metering exactness: what the pipeline bills is what clients received, across a kill -9 and across nodes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from broker.settings import BrokerSettings
from tests.e2e.broker_metering import (
    SocketClient,
    StreamClient,
    close_reasons,
    open_clients,
    outbox_backlog,
    outbox_delivered,
    publish_round,
    receive_all,
    session_rows,
    usage_by_cli,
    wait_for_usage,
)
from tests.e2e.broker_stack import TOKEN, BrokerNode, broker_node, services_file, stop
from tests.stack import migrated_stack, run_cli, running_worker

pytestmark = pytest.mark.anyio


def fresh_account() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


def outbox_path(env: dict[str, str], node: str) -> Path:
    return BrokerSettings(data_dir=Path(env["FANMETER_DATA_DIR"]), broker_node=node).outbox_path


async def test_n_clients_and_m_publishes_bill_exactly_the_deliveries_clients_received(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    streams, sockets, publishes = 4, 3, 5
    with broker_node(broker_stack_env, config, f"exact-{account}") as node:
        async with AsyncExitStack() as stack:
            clients = await open_clients(stack, node, "exact", streams, sockets)
            await asyncio.to_thread(publish_round, node, "exact", publishes, "m")
            received = await receive_all(clients, publishes)
    expected = {
        "messages_published": publishes,
        "messages_delivered": received,
        "connection_minutes": streams + sockets,
        "bytes_out": sum(c.bytes for c in clients),  # every byte the clients got, welcome messages included
    }
    assert received == (streams + sockets) * publishes
    assert wait_for_usage(broker_stack_env, account, expected) == expected
    report = usage_by_cli(broker_stack_env, account)
    assert (report["messages_published"], report["messages_delivered"]) == (publishes, received)
    assert report["messages"] == publishes + received


async def test_connections_held_for_known_durations_are_metered_with_those_durations_and_one_minute_each(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """Three clients held 0.5 s, 1.5 s and 2.5 s (past alive reports at 1 s): the sessions the pipeline
    builds start and end inside the client's own connect/close window, each billed max(1, ceil(d/60 s))."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    with broker_node(broker_stack_env, config, f"minutes-{account}") as node:
        windows = await asyncio.gather(*(_hold(node, seconds) for seconds in (0.5, 1.5, 2.5)))
    seen = wait_for_usage(broker_stack_env, account, {"connection_minutes": 3})
    assert seen["connection_minutes"] == 3
    # Paired by end: the three closes are a second apart, the opens race each other.
    await _until(lambda: [row[2] for row in session_rows(broker_stack_env, account)] == [True] * 3)
    sessions = sorted(await asyncio.to_thread(session_rows, broker_stack_env, account), key=lambda row: row[1])
    assert [(closed, minutes, transport) for _, _, closed, minutes, transport in sessions] == [
        (True, 1, "http-stream")
    ] * 3
    for (start_us, end_us, *_), (before, opened, closing, after) in zip(
        sessions, sorted(windows, key=lambda w: w[2]), strict=True
    ):
        assert before <= start_us <= opened
        assert closing <= end_us <= after + 1_000_000  # the broker notices a closed socket within a second


async def _hold(node: BrokerNode, seconds: float) -> tuple[int, int, int, int]:
    """Connect, hold ``seconds``, close; the wall-clock window (µs) around each step."""
    async with AsyncExitStack() as stack:
        before = time.time_ns() // 1000
        clients = await open_clients(stack, node, "durations", 1, 0)  # held here: a dropped client would close
        opened = time.time_ns() // 1000
        await asyncio.sleep(seconds)  # the duration under test, not a synchronisation
        closing = time.time_ns() // 1000
        assert len(clients) == 1
    return before, opened, closing, time.time_ns() // 1000


async def test_a_broker_killed_with_sigkill_and_restarted_ships_everything_once(
    origin_url: str, tmp_path: Path
) -> None:
    """No worker runs until the end, so every batch is sent and unacknowledged, then resent after the restart."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    env_dir = tmp_path / "stack"
    env_dir.mkdir()
    with migrated_stack(env_dir, lambda e: _upgrade(e)) as env:
        env = {**env, "FANMETER_ALIVE_INTERVAL_SECONDS": "1", "FANMETER_BROKER_SHIP_INTERVAL_MS": "100",
               "FANMETER_BROKER_RESEND_SECONDS": "1"}  # fmt: skip
        outbox = outbox_path(env, "killme")
        with broker_node(env, config, "killme") as node:
            async with AsyncExitStack() as stack:
                clients = await open_clients(stack, node, "k", 3, 1)
                await asyncio.to_thread(publish_round, node, "k", 3, "before")
                first = await receive_all(clients, 3)
                await _until(lambda: outbox_delivered(outbox) == first)
                node.process.send_signal(signal.SIGKILL)  # mid-traffic: four connections still open
                node.process.wait()
        assert outbox_backlog(outbox) > 0
        with broker_node(env, config, "killme") as node:
            async with AsyncExitStack() as stack:
                clients = await open_clients(stack, node, "k", 2, 0)
                await asyncio.to_thread(publish_round, node, "k", 2, "after")
                second = await receive_all(clients, 2)
            with running_worker(env):
                expected = {"messages_published": 5, "messages_delivered": first + second, "connection_minutes": 6}
                seen = wait_for_usage(env, account, expected)
                assert {k: seen[k] for k in expected} == expected
                await _until(lambda: outbox_backlog(outbox) == 0)
    assert (first, second) == (12, 4)


def _upgrade(env: dict[str, str]) -> None:
    result = run_cli(env, "db", "upgrade")
    assert result.returncode == 0, result.stderr


async def _until(condition: object, timeout_s: float = 30) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_slow_consumer_is_billed_only_for_what_it_received_and_drops_are_recorded(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """A client that stops reading: the broker's writes block, its queue (2) fills, later deliveries drop."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    publishes, size = 30, 400_000
    with broker_node(broker_stack_env, config, f"slow-{account}", {"FANMETER_BROKER_QUEUE_SIZE": "2"}) as node:
        async with AsyncExitStack() as stack:
            (slow,) = await open_clients(stack, node, "slow", 1, 0)
            for n in range(publishes):  # the client reads nothing meanwhile
                await asyncio.to_thread(_publish_big, node, "slow", n, size)
            await slow.receive_until_idle()
        received = len(slow.lines)
    assert 0 < received < publishes
    expected = {"messages_published": publishes, "messages_delivered": received}
    seen = wait_for_usage(broker_stack_env, account, expected)
    assert {k: seen[k] for k in expected} == expected
    reasons = await asyncio.to_thread(close_reasons, broker_stack_env, account)
    assert reasons == [f"client disconnected; {publishes - received} deliveries dropped (slow consumer)"]


def _publish_big(node: BrokerNode, channel: str, n: int, size: int) -> None:
    body = {"items": [{"channel": channel, "formats": {"http-stream": {"content": f"{n:04d}" + "x" * size + "\n"}}}]}
    response = httpx.post(node.publish_url(), json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200


async def test_a_broker_stopped_with_streams_open_closes_them_and_ships_the_closes_before_exiting(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    with broker_node(broker_stack_env, config, f"stop-{account}") as node:
        async with AsyncExitStack() as stack:
            await open_clients(stack, node, "stop", 2, 0)
            await asyncio.to_thread(stop, node.process)  # SIGTERM with both streams still open
    seen = wait_for_usage(broker_stack_env, account, {"connection_minutes": 2})
    assert seen["connection_minutes"] == 2
    # uvicorn ends held responses as a disconnect when it stops; what matters is that each got its close.
    assert len(await asyncio.to_thread(close_reasons, broker_stack_env, account)) == 2


async def test_deliveries_a_subscription_filter_skips_are_neither_delivered_nor_billed(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """skip-self on two sockets (alice, bob) and a stream (alice, Grip-Set-Meta), var-subst on a socket
    (bob): nobody gets their own items; each client's last item is carol's, so nothing skipped came late;
    the pipeline bills exactly the deliveries received, and the substituted bytes."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    with broker_node(broker_stack_env, config, f"filters-{account}") as node:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            ws = node.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=mf&"
            clients = [SocketClient(ws + "filters=skip-self&user=alice"),
                       SocketClient(ws + "filters=skip-self&user=bob"),
                       StreamClient(client, f"{node.url}/s/svc-a/fstream?ch=mf&filters=skip-self&user=alice"),
                       SocketClient(ws + "filters=var-subst&user=bob")]  # fmt: skip
            for c in clients:
                await c.open(stack)
            senders = ["alice", "bob", "alice", "bob", "alice", "carol"]
            items = [{"channel": "mf", "meta": {"sender": s}, "formats": {
                "http-stream": {"content": f"{s}-{n}\n"}, "ws-message": {"content": f"{s}-{n} %(user)s"}}}
                for n, s in enumerate(senders)]  # fmt: skip
            response = httpx.post(f"{node.url}/service/svc-a/publish/", json={"items": items},
                                  headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert response.status_code == 200
            counts = [3, 4, 3, 6]
            await asyncio.wait_for(asyncio.gather(*(c.receive(n) for c, n in zip(clients, counts, strict=True))), 30)
    alice, bob, stream, subst = clients
    assert alice.messages == ["bob-1 %(user)s", "bob-3 %(user)s", "carol-5 %(user)s"]
    assert bob.messages == ["alice-0 %(user)s", "alice-2 %(user)s", "alice-4 %(user)s", "carol-5 %(user)s"]
    assert stream.lines == ["bob-1", "bob-3", "carol-5"]
    assert subst.messages == [f"{s}-{n} bob" for n, s in enumerate(senders)]
    expected = {
        "messages_published": len(senders),
        "messages_delivered": sum(counts),
        "connection_minutes": len(clients),
        "bytes_out": sum(c.bytes for c in clients),
    }
    assert wait_for_usage(broker_stack_env, account, expected) == expected


async def test_content_a_filter_cannot_render_ends_the_http_hold_and_is_not_billed_as_delivered(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """As Pushpin 1.36: a build-id stream (prev-id 1) gets item 2 rendered, then item 3 names a variable
    build-id has no value for and the stream ends (item 4 never comes); a var-subst long-poll on the channel
    whose item names a meta it lacks is answered 502; a plain stream gets every stream item as published.
    Billed: the 4 deliveries received (3 plain, 1 build-id), 3 connections, and every byte each client got."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    with broker_node(broker_stack_env, config, f"build-id-{account}") as node:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            plain = StreamClient(client, f"{node.url}/s/svc-a/stream?ch=mb")
            await plain.open(stack)
            await asyncio.sleep(1.5)  # the channel is not new any more: no refresh fetches the next link
            built = StreamClient(client, f"{node.url}/s/svc-a/bstream?ch=mb&prev=1", b"stream open first\n")
            await built.open(stack)
            poll = asyncio.ensure_future(client.get(f"{node.url}/s/svc-a/fpoll?ch=mb&filters=var-subst&user=al"))
            await asyncio.sleep(1)  # the long-poll is held
            stream = (("2", "1", "id %I\n"), ("3", "2", "bad %(x)s\n"), ("4", "3", "after %I\n"))
            items: list[dict[str, object]] = [
                {"channel": "mb", "id": i, "prev-id": p, "http-stream": {"content": c}} for i, p, c in stream
            ]
            items.append({"channel": "mb", "http-response": {"body": "to %(x)s\n"}})
            response = await client.post(f"{node.url}/service/svc-a/publish/", json={"items": items},
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert response.status_code == 200
            await asyncio.wait_for(plain.receive(3), 30)
            await built.receive_to_end()  # the broker ended it
            answered = await asyncio.wait_for(poll, 30)
    assert (built.lines, plain.lines) == (["id 2"], ["id %I", "bad %(x)s", "after %I"])
    assert answered.status_code == 502
    expected = {"messages_published": 4, "messages_delivered": 4, "connection_minutes": 3,
                "bytes_out": plain.bytes + built.bytes + len(answered.content)}  # fmt: skip
    assert wait_for_usage(broker_stack_env, account, expected) == expected


async def test_a_stream_holds_first_body_relayed_as_it_arrives_is_billed_byte_for_byte(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """A first body of 4 MiB in 64 KiB parts, and one sent in two parts a while apart: each client's bytes
    out are exactly what it read, the item published after them included."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    received = [0, 0]
    with broker_node(broker_stack_env, config, f"relay-{account}") as node:
        async with httpx.AsyncClient(timeout=30) as client:
            url, key = f"{node.url}/s/svc-a", uuid.uuid4().hex
            async with (
                client.stream("GET", f"{url}/bigstream?ch=mr&mib=4") as big,
                client.stream("GET", f"{url}/slowstream?ch=mr&first=100&key={key}") as slow,
            ):
                big_chunks, slow_chunks = big.aiter_raw(), slow.aiter_raw()
                while received[0] < 4 * 1024 * 1024 + 4:
                    received[0] += len(await anext(big_chunks))
                received[1] += len(await anext(slow_chunks))
                assert (await client.get(f"{url}/release?key={key}")).status_code == 200
                received[1] += len(await anext(slow_chunks))
                item = {"channel": "mr", "http-stream": {"content": "one more\n"}}
                published = await client.post(f"{node.url}/service/svc-a/publish/", json={"items": [item]},
                                              headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                assert published.status_code == 200
                received[0] += len(await anext(big_chunks))
                received[1] += len(await anext(slow_chunks))
    assert received == [4 * 1024 * 1024 + len(b"end\n") + 9, 100 + len(b"rest\n") + 9]
    expected = {"messages_published": 1, "messages_delivered": 2, "connection_minutes": 2, "bytes_out": sum(received)}
    assert wait_for_usage(broker_stack_env, account, expected) == expected


async def test_publish_actions_and_ws_message_types_bill_only_what_clients_received(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    """A ping, a pong and a hint reach nobody and are not billed; a binary message is billed by its size;
    a close with a code ends the socket (the close itself is no delivery); a stream's hint without a next
    link is ignored and its close ends it."""
    account = fresh_account()
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    with broker_node(broker_stack_env, config, f"actions-{account}") as node:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            socket = SocketClient(node.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=pa")
            stream = StreamClient(client, f"{node.url}/s/svc-a/stream?ch=pa")
            for c in (socket, stream):
                await c.open(stack)
            items = [{"channel": "pa", "formats": {"ws-message": ws, "http-stream": hs}} for ws, hs in (
                ({"type": "ping", "content": "p"}, {"content": "one\n"}), ({"type": "pong"}, {"action": "hint"}),
                ({"type": "binary", "content": "bin"}, {"content": "two\n"}), ({"action": "hint"}, {"action": "close"}),
                ({"action": "close", "code": 4002, "reason": "bye"}, {"content": "never\n"}))]  # fmt: skip
            response = await client.post(f"{node.url}/service/svc-a/publish/", json={"items": items},
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert response.status_code == 200
            got = await asyncio.wait_for(socket._socket.recv(), 10)
            with pytest.raises(Exception, match="4002"):
                await asyncio.wait_for(socket._socket.recv(), 10)
            with contextlib.suppress(StopAsyncIteration):  # the published close ends the stream
                await stream.receive_until_idle(1.0)
    assert got == b"bin" and stream.lines == ["one", "two"]
    expected = {
        "messages_published": len(items),
        "messages_delivered": 3,  # bin, one, two
        "connection_minutes": 2,
        "bytes_out": len(b"welcome") + len(got) + stream.bytes,
    }
    assert wait_for_usage(broker_stack_env, account, expected) == expected
