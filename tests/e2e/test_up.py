"""`fanmeter up --once`: the whole pipeline on the configured stack with simulated traffic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.stack import free_port, fresh_database, run_cli, stack_environment


def test_up_once_sends_demo_traffic_through_a_worker_and_prints_usage_and_statements(tmp_path: Path) -> None:
    env = {**stack_environment(tmp_path), "FANMETER_ADMIN_PORT": str(free_port())}
    with fresh_database() as url:
        if url:
            env["FANMETER_DATABASE_URL"] = url
        result = run_cli(env, "up", "--once", "--events", "3000", timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "rejected:    0" in out
    for account in ("acme", "globex", "initech"):
        assert out.count(f"== {account} ") == 2
    # No draft is built before the month's grace period ends: both months are open estimates.
    assert out.count('"status": "open"') == 6 and '"status": "draft"' not in out
    accepted = int(out.split("accepted:")[1].split()[0])
    assert accepted > 2900
    assert f"admin service: http://127.0.0.1:{env['FANMETER_ADMIN_PORT']}" in out
    for role in ("admin", "finance", "superuser", "engineer", "billing", "user"):
        assert re.search(rf"^  {role} +\(\w+ *\) Authorization: Bearer fm_\S+$", out, re.MULTILINE), role
    live = out.split("metered usage of live-demo:")[1]
    assert "5 clients received 20 messages" in out
    assert '"messages_published": 4,' in live and '"messages_delivered": 20,' in live
    assert '"connection_minutes": 5,' in live


@pytest.mark.parametrize("command", ["up", "ingest", "usage", "statement", "worker", "db", "admin", "token", "broker"])
def test_every_command_documents_itself(command: str, tmp_path: Path) -> None:
    result = run_cli({"FANMETER_DATA_DIR": str(tmp_path)}, command, "--help")

    assert result.returncode == 0 and "Usage:" in result.stdout
