"""The Pushpin the conformance suite compares against starts even when a port it was given is taken.

CI once lost the whole Pushpin half of the suite this way: a port chosen free was bound by someone
else before Pushpin's handler bound it, and the handler exited at start.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tests.e2e.pushpin as harness
from tests.stack import free_port


@pytest.fixture
def a_taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_pushpin_given_a_taken_port_is_started_again_with_fresh_ports(
    origin_url: str, tmp_path: Path, a_taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("pushpin") is None:
        pytest.fail("Debian's pushpin is needed: apt-get install -y pushpin (.ci/run does)")
    handed_out: list[int] = []
    monkeypatch.setattr(harness, "free_port", lambda: handing_out(handed_out, a_taken_port, starts_taken=1))
    with harness.pushpin(tmp_path, origin_url) as node:
        assert httpx.get(f"{node.url}/plain", timeout=5).status_code == 200
    assert len(handed_out) == 10, "one start with the taken port, then one with five fresh ports"


def test_a_pushpin_whose_ports_are_always_taken_fails_with_the_component_logs(
    origin_url: str, tmp_path: Path, a_taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("pushpin") is None:
        pytest.fail("Debian's pushpin is needed: apt-get install -y pushpin (.ci/run does)")
    handed_out: list[int] = []
    monkeypatch.setattr(harness, "free_port", lambda: handing_out(handed_out, a_taken_port, starts_taken=99))
    with pytest.raises(RuntimeError, match=f"unable to bind to tcp://127.0.0.1:{a_taken_port}"):
        with harness.pushpin(tmp_path, origin_url):
            pass
    assert len(handed_out) == 5 * harness.START_ATTEMPTS


def handing_out(handed_out: list[int], taken: int, starts_taken: int) -> int:
    """Ports as free_port would, but ``taken`` as the command port of the first ``starts_taken`` starts.

    A start asks for five ports in this order: http, publish, push_in, push_sub, command.
    """
    start, position = divmod(len(handed_out), 5)
    port = taken if position == 4 and start < starts_taken else free_port()
    handed_out.append(port)
    return port
