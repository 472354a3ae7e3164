"""The Pushpin the conformance suite compares against starts even when a port it was given is taken.

CI once lost the whole Pushpin half of the suite this way: a port chosen free was bound by someone
else before Pushpin's handler bound it, and the handler exited at start.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import tests.e2e.pushpin as harness
from tests.stack import free_port


@dataclass
class PortsHandedOut:
    """Ports as free_port would hand them out, but ``taken`` as the command port of the first
    ``starts_taken`` starts. A start asks for five ports in this order: http, publish, push_in,
    push_sub, command."""

    taken: int
    starts_taken: int = 0
    ports: list[int] = field(default_factory=list)

    def __call__(self) -> int:
        start, position = divmod(len(self.ports), 5)
        self.ports.append(self.taken if position == 4 and start < self.starts_taken else free_port())
        return self.ports[-1]


@pytest.fixture
def handed_out(monkeypatch: pytest.MonkeyPatch) -> Iterator[PortsHandedOut]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        ports = PortsHandedOut(int(holder.getsockname()[1]))
        monkeypatch.setattr(harness, "free_port", ports)
        yield ports


def test_a_pushpin_given_a_taken_port_is_started_again_with_fresh_ports(
    origin_url: str, tmp_path: Path, handed_out: PortsHandedOut
) -> None:
    handed_out.starts_taken = 1
    with harness.pushpin(tmp_path, origin_url) as node:
        assert httpx.get(f"{node.url}/plain", timeout=5).status_code == 200
    assert len(handed_out.ports) == 10, "one start with the taken port, then one with five fresh ports"


def test_a_pushpin_whose_ports_are_always_taken_fails_with_the_component_logs(
    origin_url: str, tmp_path: Path, handed_out: PortsHandedOut
) -> None:
    handed_out.starts_taken = harness.START_ATTEMPTS
    with pytest.raises(RuntimeError, match=f"unable to bind to tcp://127.0.0.1:{handed_out.taken}"):
        with harness.pushpin(tmp_path, origin_url):
            pass
    assert len(handed_out.ports) == 5 * harness.START_ATTEMPTS
