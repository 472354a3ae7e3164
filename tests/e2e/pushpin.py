"""Debian's `pushpin` (1.36) as a reference broker for conformance tests: a config of its own in a temp dir."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.e2e.broker_stack import GRIP_KEY, free_port, running, wait_for_port


@dataclass(frozen=True)
class PushpinNode:
    url: str  # clients
    control_uri: str  # gripcontrol's control_uri (publish at control_uri + "/publish/")
    process: subprocess.Popen[bytes]


def available() -> bool:
    return shutil.which("pushpin") is not None


CONFIG = """[global]
include={{libdir}}/internal.conf
rundir={run}
ipc_prefix=pp-{tag}-
port_offset=0
stats_connection_ttl=120
[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http_port}
logdir={log}
log_level={log_level}
client_buffer_size=8192
client_maxconn=50000
[proxy]
routesfile={routes}
sig_iss=pushpin
sig_key={key}
updates_check=off
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out
[handler]
push_in_spec=tcp://127.0.0.1:{push_in}
push_in_sub_specs=tcp://127.0.0.1:{push_sub}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={publish_port}
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:{command}
message_rate={message_rate}
message_hwm={message_hwm}
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=json
"""


@contextmanager
def pushpin(tmp: Path, origin_url: str, message_rate: int = 2500, message_hwm: int = 25000,
            log_level: int = 2) -> Iterator[PushpinNode]:  # fmt: skip
    """A Pushpin in front of ``origin_url`` (WebSocket-over-HTTP route), signing with the origin's key.

    ``log_level`` 2 (Debian's default) logs every request in the proxy, the handler and zurl; 1 logs warnings only.
    """
    tag = uuid.uuid4().hex[:6]
    run, log = tmp / f"pushpin-{tag}-run", tmp / f"pushpin-{tag}-log"
    run.mkdir()
    log.mkdir()
    origin = urlsplit(origin_url)
    routes = tmp / f"routes-{tag}"
    routes.write_text(f"* {origin.hostname}:{origin.port},over_http\n")
    http_port, publish_port = free_port(), free_port()
    config = tmp / f"pushpin-{tag}.conf"
    config.write_text(
        CONFIG.format(
            run=run, tag=tag, http_port=http_port, log=log, routes=routes, key=GRIP_KEY, push_in=free_port(),
            push_sub=free_port(), publish_port=publish_port, command=free_port(), message_rate=message_rate,
            message_hwm=message_hwm, log_level=log_level,
        )
    )  # fmt: skip
    out = tmp / f"pushpin-{tag}.out"
    with running(["pushpin", "--config", str(config)], {}, http_port, out) as process:
        wait_for_port(publish_port, process, out)
        node = PushpinNode(f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{publish_port}", process)
        _wait_until_routing(node.url, process, out)
        yield node


def _wait_until_routing(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    """Wait until a request is proxied: Pushpin's HTTP port opens before its proxy has joined it,
    and a request in between is dropped (seen as "Server disconnected")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pushpin exited at start:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"pushpin did not route a request in {timeout_s} s:\n{log.read_text(errors='replace')}")
