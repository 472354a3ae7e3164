"""`fanmeter up --once`: the whole pipeline on the configured stack with simulated traffic."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.stack import free_port, fresh_database, run_cli, stack_environment

# A row of the statements table: account (on its first month only), month, status, minutes,
# messages, GB out, total, number.
ROW = re.compile(
    r"^(?P<account>\S+(?: \(trial\))?)? +(?P<month>\d{4}-\d{2}) +(?P<status>open|draft|finalized) +"
    r"(?P<minutes>[\d,]+) +(?P<messages>[\d,]+) +(?P<gb>[\d,]+\.\d) +(?P<total>-?[\d,]+\.\d\d) USD"
    r"(?:  (?P<number>\S+))?$",
    re.MULTILINE,
)


def _table(out: str) -> dict[tuple[str, str], dict[str, str]]:
    rows: dict[tuple[str, str], dict[str, str]] = {}
    account = ""
    for match in ROW.finditer(out.split("statements (")[1].split("live traffic:")[0]):
        account = (match["account"] or account).removesuffix(" (trial)")
        rows[(account, match["month"])] = match.groupdict()
    return rows


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_up_once_sends_demo_traffic_through_a_worker_and_prints_usage_and_statements(tmp_path: Path) -> None:
    env = {**stack_environment(tmp_path), "FANMETER_ADMIN_PORT": str(free_port())}
    with fresh_database() as url:
        if url:
            env["FANMETER_DATABASE_URL"] = url
        result = run_cli(env, "up", "--once", "--events", "3000", timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout
        rows = _table(out)
        months = sorted({month for _, month in rows})
        usage = {m: json.loads(run_cli(env, "usage", "acme", m, "--format", "json").stdout) for m in months}
        finalized = json.loads(run_cli(env, "statement", "acme", months[0], "--format", "json").stdout)

    # First where to sign in: the admin service and a token per demo role, the trial account's superuser too.
    assert out.startswith(f"admin service: http://127.0.0.1:{env['FANMETER_ADMIN_PORT']} ")
    for role in ("admin", "finance", "superuser", "engineer", "billing", "user"):
        assert re.search(rf"^  {role} +\(\w+ *\) Authorization: Bearer fm_\S+", out, re.MULTILINE), role
    assert re.search(r"^  superuser \(umbrella\) Authorization: Bearer fm_\S+ \(a trial account\)$", out, re.MULTILINE)
    # No worker banner or warnings on the terminal: the worker's output is in its log, named once.
    for noise in ("[config]", "[queues]", "celery", "Warning", "Warm shutdown", "fanmeter admin on"):
        assert noise not in out and noise not in result.stderr, noise
    log = tmp_path / "worker.log"
    assert out.count(str(log)) == 1 and log.stat().st_size > 0

    # Every demo event through the pipeline, none rejected: the daily history and the boundary traffic.
    sent = int(out.split("events read:")[1].split()[0])
    assert sent > 3000 and f"accepted:    {sent}\n" in out and "rejected:    0" in out

    # One table: each account's month before last (finalized), last month and this one (open).
    assert len(months) == 3 and months == sorted(months)
    assert {account for account, _ in rows} == {"acme", "globex", "initech", "umbrella"}
    assert "umbrella (trial)" in out
    assert len(rows) == 12
    statuses = {key: row["status"] for key, row in rows.items()}
    for account in ("acme", "globex", "initech", "umbrella"):
        assert statuses[(account, months[0])] == "finalized"
        assert statuses[(account, months[2])] == "open"
        assert re.fullmatch(r"FM-\d{4}-\d{6}", rows[(account, months[0])]["number"])
    assert statuses[("acme", months[1])] == statuses[("globex", months[1])] == "finalized"
    assert statuses[("initech", months[1])] == statuses[("umbrella", months[1])] == "draft"
    # Dollars, not cents, for the paid accounts; the trial account has no Fanout, so nothing metered.
    assert Decimal(rows[("acme", months[1])]["total"].replace(",", "")) > 100
    assert rows[("umbrella", months[1])]["messages"] == "0"
    # The table shows what metering counted and what the stored statement says.
    for month in months:
        row = rows[("acme", month)]
        assert _int(row["minutes"]) == usage[month]["connection_minutes"] > 0
        assert _int(row["messages"]) == usage[month]["messages"] > 1_000_000
        assert row["gb"] == f"{usage[month]['bytes_out'] / 1e9:,.1f}"
    first = rows[("acme", months[0])]
    assert finalized["status"] == "finalized" and finalized["number"] == first["number"]
    assert f"{Decimal(finalized['total']):,.2f}" == first["total"]

    # The live broker: real clients and publishes, metered.
    assert (
        "5 clients received 20 messages; metered usage of live-demo: 5 connection minutes, "
        "4 messages published, 20 delivered," in out
    )


@pytest.mark.parametrize("command", ["up", "ingest", "usage", "statement", "worker", "db", "admin", "token", "broker"])
def test_every_command_documents_itself(command: str, tmp_path: Path) -> None:
    result = run_cli({"FANMETER_DATA_DIR": str(tmp_path)}, command, "--help")

    assert result.returncode == 0 and "Usage:" in result.stdout
