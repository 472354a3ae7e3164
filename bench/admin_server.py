"""What the HTTP benchmarks share: a `fanmeter admin` they serve and measure, and the CPU seconds of its
process tree and of its database's PostgreSQL backends, from /proc.

On a shared machine requests/s moves with other work; CPU per request does not.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(server_pid: int, url: str) -> dict[str, float]:
    """CPU seconds used so far by the server's process tree and by the database's backends."""
    database = make_url(url).database or ""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    postgres: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / _TICK
        if cmdline.startswith(b"postgres:") and f" {database} ".encode() in cmdline:
            postgres.append(pid)
    tree, todo = {server_pid}, [server_pid]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                todo.append(pid)
    return {"server": sum(used[p] for p in tree if p in used), "postgres": sum(used[p] for p in postgres)}


@contextmanager
def serving_admin(
    url: str, data_dir: Path, workers: int, source: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`fanmeter admin` with ``workers`` processes on the database ``url`` (from the checkout ``source``
    when given), once /healthz answers: its base URL and process. Afterwards it is stopped, and the
    ERROR lines of its log (data_dir/admin.log) are counted, the first one shown."""
    port = 18000 + random.randint(0, 999)
    env = {**os.environ, "FANMETER_DATABASE_URL": url, "FANMETER_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "fanmeter", "admin", "--port", str(port), "--workers", str(workers)]
    if source:
        env["PYTHONPATH"] = str(source.resolve())
    log_path = data_dir / "admin.log"
    log = log_path.open("wb")
    cwd = source.resolve() if source else None
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        problems = [line for line in log_path.read_text(errors="replace").splitlines() if "ERROR" in line]
        if problems:
            print(f"server logged {len(problems)} errors, e.g. {problems[0]}")


def _wait(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("fanmeter admin did not start")
