"""Debian's `pushpin` (1.36) as a reference broker for conformance tests: a config of its own in a temp dir."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.e2e.broker_stack import GRIP_KEY, ExitedAtStart, running, wait_for_port
from tests.stack import free_port


@dataclass(frozen=True)
class PushpinNode:
    url: str  # clients
    control_uri: str  # gripcontrol's control_uri (publish at control_uri + "/publish/")
    stats_spec: str  # where Pushpin publishes its stats (ZeroMQ PUB)
    process: subprocess.Popen[bytes]


CONFIG = """[global]
include={{libdir}}/internal.conf
rundir={run}
ipc_prefix=pp-
port_offset=0
stats_connection_ttl={stats_connection_ttl}
[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http_port}
logdir={log}
log_level={log_level}
client_buffer_size=8192
client_maxconn=50000
[proxy]
routesfile={routes_file}
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
stats_report_interval={stats_report_interval}
stats_format=json
"""


# Pushpin's runner stops everything when one component exits at start, and says only which one.
# CI lost the Pushpin half of the conformance suite that way once, without the component logs;
# the cause reproduced here is a port chosen free and taken before Pushpin bound it. A Pushpin
# that exits at start is started again with fresh ports and a fresh run dir, and the last
# failure is raised with every component's log.
START_ATTEMPTS = 3
UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its NUL


@dataclass(frozen=True)
class PushpinSettings:
    """What a test may set. ``log_level`` 2 (Debian's default) logs every request in the proxy, the
    handler and zurl; 1 logs warnings only. Each of ``routes`` is a route's selector (``*``, or with
    ``id=``, ``path_beg=``...), all of them to the origin."""

    message_rate: int = 2500
    message_hwm: int = 25000
    log_level: int = 2
    routes: tuple[str, ...] = ("*",)
    stats_connection_ttl: int = 120
    stats_report_interval: int = 10


@contextmanager
def pushpin(tmp: Path, origin_url: str, **settings: Any) -> Iterator[PushpinNode]:
    """A Pushpin in front of ``origin_url`` (WebSocket-over-HTTP routes), signing with the origin's key;
    ``settings`` are PushpinSettings' fields."""
    if shutil.which("pushpin") is None:
        raise RuntimeError("Debian's pushpin is needed: apt-get install -y pushpin (.ci/run does)")
    chosen = PushpinSettings(**settings)
    for attempt in range(1, START_ATTEMPTS + 1):
        started = ExitStack()
        try:
            node = _start(started, tmp, origin_url, chosen)
        except ExitedAtStart:
            started.close()
            if attempt == START_ATTEMPTS:
                raise
            continue
        with started:
            yield node
        return


def _start(started: ExitStack, tmp: Path, origin_url: str, settings: PushpinSettings) -> PushpinNode:
    tag = uuid.uuid4().hex[:6]
    # Short names: the ipc sockets' paths, under ``run``, must fit in a sockaddr_un.
    run, log = tmp / f"{tag}-run", tmp / f"{tag}-log"
    longest_socket = run / "pp-condure-out-stream"
    if len(str(longest_socket)) > UNIX_SOCKET_PATH_MAX:
        # Pushpin's components would exit at start, each logging nothing about why.
        raise ValueError(
            f"{tmp} is too deep for Pushpin's ipc sockets: {longest_socket} is over {UNIX_SOCKET_PATH_MAX}"
        )
    run.mkdir()
    log.mkdir()
    origin = urlsplit(origin_url)
    routes_file = tmp / f"routes-{tag}"
    routes_file.write_text(
        "".join(f"{selector} {origin.hostname}:{origin.port},over_http\n" for selector in settings.routes)
    )
    http_port, publish_port = free_port(), free_port()
    config = tmp / f"pushpin-{tag}.conf"
    config.write_text(
        CONFIG.format(
            run=run, http_port=http_port, log=log, routes_file=routes_file, key=GRIP_KEY, push_in=free_port(),
            push_sub=free_port(), publish_port=publish_port, command=free_port(), **asdict(settings),
        )
    )  # fmt: skip
    out = tmp / f"pushpin-{tag}.out"
    try:
        process = started.enter_context(running(["pushpin", "--config", str(config)], {}, http_port, out))
        wait_for_port(publish_port, process, out)
        node = PushpinNode(
            f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{publish_port}", f"ipc://{run}/pp-stats", process
        )
        _wait_until_routing(node.url, process, out)
    except RuntimeError as failed:
        # The runner's own output says only which component exited; the reason is in that component's log.
        logs = _component_logs(log)
        raise type(failed)(f"{failed}\n{logs}") from failed
    return node


def _component_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in sorted(log_dir.glob("*.log")))


def _wait_until_routing(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    """Wait until a request is proxied: Pushpin's HTTP port opens before its proxy has joined it,
    and a request in between is dropped (seen as "Server disconnected")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ExitedAtStart(f"pushpin exited at start:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"pushpin did not route a request in {timeout_s} s:\n{log.read_text(errors='replace')}")
