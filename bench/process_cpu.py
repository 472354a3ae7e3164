"""CPU seconds of a benchmarked server's process tree and of its database's PostgreSQL backends, from /proc.

On a shared machine requests/s moves with other work; CPU per request does not.
"""

from __future__ import annotations

import os
from pathlib import Path

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
