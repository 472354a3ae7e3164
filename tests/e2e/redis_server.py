"""A private Redis server for the tests that need one: Debian's ``redis-server`` on a free port.

The tests start their own, as they start their own Pushpin, so ``make test`` needs the package
installed (the Makefile installs it where it can) and never a Redis someone left running.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.stack import free_port

INSTALL_HINT = "the two-node broker tests need redis-server: run `apt-get install redis-server`"


@contextmanager
def redis_server(run_dir: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Run ``redis-server`` (no persistence) until the block ends; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    port = free_port()
    log = run_dir / f"redis-{port}.log"
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(run_dir), "--logfile", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_answering(port, process, log, timeout_s)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited at start:\n{log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout_s} s")
