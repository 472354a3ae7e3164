"""SIGTERM (what kill, systemd and container runtimes send) stops every long-running command as
Ctrl-C does, within a stated time, and `fanmeter up` leaves no process it started behind.

Stated times: `worker`, `admin`, `broker` and `pushpin-stats` exit within STOP_S; `up` within
UP_STOP_S (it stops the broker and demo origin, then the worker and admin service, each given
fanmeter.up.STOP_S before a SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fanmeter.live_demo import descendants
from tests.faults.harness import batches_recorded, compare, engine_for, start_ingest, start_worker, wait_until, workers
from tests.stack import free_port
from tests.strategies import generate_trace

STOP_S = 10.0
UP_STOP_S = 20.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the command and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            try:
                if os.getsid(int(entry.name)) == sid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _terminate(process: subprocess.Popen[bytes], limit_s: float) -> float:
    """SIGTERM ``process`` alone; the seconds it took to exit (fails past ``limit_s``)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"{process.args!r} still running {limit_s} s after SIGTERM") from None
    return time.monotonic() - started


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        environment = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}  # "Ctrl-C stops." reaches the log at once
        return subprocess.Popen([sys.executable, "-m", "fanmeter", *args], env=environment,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def test_up_stops_on_sigterm_with_every_process_it_started(stack: dict[str, str], tmp_path: Path) -> None:
    env = {**stack, "FANMETER_ADMIN_PORT": str(free_port())}
    log = tmp_path / "up.log"
    up = _start(env, log, "up", "--events", "300")
    try:
        wait_until(lambda: "Ctrl-C stops." in log.read_text(errors="replace"), 120, "up to be serving", poll_s=0.5)
        children = {pid: _cmdline(pid) for pid in descendants(up.pid)}
        started = " | ".join(children.values())
        for name in ("fanmeter worker", "fanmeter admin", "fanmeter broker", "fanmeter.demo_origin"):
            assert name in started, (name, started)
        took = _terminate(up, UP_STOP_S)
    finally:
        for pid in _session(up.pid):
            os.kill(pid, signal.SIGKILL)
    left = [f"{pid} {children[pid]}" for pid in children if _alive(pid)]
    assert left == [] and _session(up.pid) == [], left
    assert up.returncode == 143
    text = log.read_text(errors="replace")
    assert "stopping (SIGTERM)" in text and "Traceback" not in text.split("Ctrl-C stops.")[1]
    print(json.dumps({"command": "up", "processes": len(children) + 1, "stopped_in_s": round(took, 1)}))  # noqa: T201


def test_the_worker_stops_on_sigterm_mid_ingest_and_another_one_finishes_the_work(
    stack: dict[str, str], tmp_path: Path
) -> None:
    trace = generate_trace(seed=41, n_events=4_000, duplicate_rate=0.02)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in trace) + "\n")
    engine = engine_for(stack)
    first = start_worker(stack)
    with workers(stack) as started:
        started[0].stop()  # the context's own worker is not wanted here; `first` takes the traffic
        ingest = start_ingest(stack, path, 40)
        try:
            wait_until(lambda: batches_recorded(engine) >= 20, 60, "the ingest to be under way", poll_s=0.05)
            took = _terminate(first.process, STOP_S)
            assert first.process.returncode == 0, first.log.read_text()[-2000:]
            started.append(start_worker(stack))
            out, err = ingest.communicate(timeout=150)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 0, err[-2000:]
        outcome = compare(engine, "SIGTERM of a worker during fanmeter ingest", 1, trace)
    outcome.record()
    print(json.dumps({"command": "worker", "stopped_in_s": round(took, 1)}))  # noqa: T201
    assert outcome.events_billed == outcome.events_sent and outcome.differences == []


def test_admin_broker_and_pushpin_stats_stop_on_sigterm(stack: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "services.json"
    service = {"service_id": "svc", "account_id": "acct", "origin": "http://127.0.0.1:9", "publish_tokens": ["t"],
               "grip_key": "k" * 32, "fanout_enabled": True}  # fmt: skip
    config.write_text(json.dumps({"services": [service]}))
    route_map = tmp_path / "route-map.json"
    route_map.write_text(json.dumps({"routes": [{"route": "r", "account_id": "acct", "service_id": "svc"}]}))
    admin_port, broker_port = free_port(), free_port()
    commands = {
        "admin": ["admin", "--port", str(admin_port)],
        "broker": ["broker", "--port", str(broker_port), "--config", str(config), "--node", "sigterm"],
        "pushpin-stats": [
            "pushpin-stats",
            "--stats-spec",
            f"ipc://{tmp_path}/stats",
            "--route-map",
            str(route_map),
            "--node",
            "sigterm",
        ],  # fmt: skip
    }
    ready = {"admin": "fanmeter admin on", "broker": "serving 1 services", "pushpin-stats": "outbox"}
    for name, args in commands.items():
        log = tmp_path / f"{name}.log"
        process = _start(stack, log, *args)
        try:
            wait_until(lambda log=log, name=name: ready[name] in log.read_text(errors="replace"), 60, name, 0.2)
            time.sleep(1.0)  # past start-up: serving
            took = _terminate(process, STOP_S)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        text = log.read_text(errors="replace")
        # uvicorn ends by re-raising the signal it stopped on (-15) once it has shut down gracefully
        assert process.returncode in (0, -signal.SIGTERM), (name, process.returncode, text[-2000:])
        assert "Traceback" not in text, (name, text[-2000:])
        print(json.dumps({"command": name, "stopped_in_s": round(took, 1)}))  # noqa: T201
