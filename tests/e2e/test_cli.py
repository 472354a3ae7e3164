"""The `fanmeter` command line against a running stack: ingest, usage, statement."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from pypdf import PdfReader

from tests.stack import run_cli
from tests.strategies import close_event, delivered_event, open_event, published_event

ACCOUNT = "acct-e2e"


def _events() -> list[dict[str, object]]:
    where = {"account": ACCOUNT, "service": "svc-a", "connection": "c1", "source": "broker/n1"}
    return [
        # 23:59:30 on the last day of January, closed 90 s later: 2 minutes, one in each month.
        open_event("2026-01-31T23:59:30Z", id="o1", **where),
        close_event("2026-02-01T00:01:00+00:00", 2_000_000_000, 10, id="c1", **where),
        published_event(
            "2026-02-01T00:00:05+01:00", 3, account=ACCOUNT, service="svc-a", channel="x", id="p1", source="broker/n1"
        ),
        delivered_event(
            "2026-02-03T08:00:00Z", 30, account=ACCOUNT, service="svc-b", channel="x", id="d1", source="broker/n1"
        ),
    ]


def _ingest(stack_env: dict[str, str], path: Path) -> str:
    result = run_cli(stack_env, "ingest", str(path), "--timeout", "120")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ingest_usage_and_statement_from_the_command_line(stack_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(_events()))  # one batch array, as application/cloudevents-batch+json

    first = _ingest(stack_env, path)
    second = _ingest(stack_env, path)

    assert "accepted:    4" in first and "rejected:    0" in first
    assert "accepted:    0" in second and "duplicates:  4" in second
    january = json.loads(run_cli(stack_env, "usage", ACCOUNT, "2026-01", "--format", "json").stdout)
    february = json.loads(run_cli(stack_env, "usage", ACCOUNT, "2026-02", "--format", "json").stdout)
    assert january["connection_minutes"] == 1 and january["messages"] == 3
    assert february == {
        "account_id": ACCOUNT,
        "month": "2026-02",
        "connection_minutes": 1,
        "messages": 30,
        "messages_published": 0,
        "messages_delivered": 30,
        "bytes_out": 2_000_000_000,
        "services": [
            {
                "service_id": "svc-a",
                "connection_minutes": 1,
                "messages_published": 0,
                "messages_delivered": 0,
                "bytes_out": 2_000_000_000,
            },
            {
                "service_id": "svc-b",
                "connection_minutes": 0,
                "messages_published": 0,
                "messages_delivered": 30,
                "bytes_out": 0,
            },
        ],
    }
    table = run_cli(stack_env, "usage", ACCOUNT, "2026-02").stdout
    assert "svc-a" in table and "2,000,000,000" in table

    statement = json.loads(run_cli(stack_env, "statement", ACCOUNT, "2026-02", "--format", "json").stdout)
    assert set(statement) == {
        "account_id", "month", "status", "currency", "lines", "subtotal", "total", "number", "content_hash",
        "credit_notes", "credited", "remaining",
    }  # fmt: skip
    # no draft is stored for February yet, so this is the open estimate computed now
    assert (statement["status"], statement["currency"], statement["number"]) == ("open", "USD", None)
    bandwidth = next(line for line in statement["lines"] if line["kind"] == "bandwidth")
    assert (bandwidth["quantity"], bandwidth["unit"], bandwidth["amount"]) == ("2.000000000", "GB", "0.24")
    assert statement["total"] == "0.24"  # 1 minute and 30 messages round to 0.00

    rows = list(csv.reader(io.StringIO(run_cli(stack_env, "statement", ACCOUNT, "2026-02", "--format", "csv").stdout)))
    assert rows[0][:3] == ["service_id", "kind", "quantity"]
    assert any(row[1] == "bandwidth" and row[5] == "0.24" for row in rows)

    pdf_path = tmp_path / "february.pdf"
    printed = run_cli(stack_env, "statement", ACCOUNT, "2026-02", "--format", "pdf", "--output", str(pdf_path))
    assert printed.returncode == 0, printed.stderr
    text = "".join(page.extract_text() for page in PdfReader(pdf_path).pages)
    assert ACCOUNT in text and "2026-02" in text and "0.24" in text and "open" in text


def test_bad_input_on_the_command_line_gets_a_clear_error(stack_env: dict[str, str], tmp_path: Path) -> None:
    bad_month = run_cli(stack_env, "usage", ACCOUNT, "2026-13")
    missing_file = run_cli(stack_env, "ingest", str(tmp_path / "nope.jsonl"))

    assert bad_month.returncode == 2 and "not a month" in bad_month.stderr
    assert missing_file.returncode == 2 and "does not exist" in missing_file.stderr


def test_rejections_are_reported_grouped_by_reason(stack_env: dict[str, str], tmp_path: Path) -> None:
    good = open_event("2026-03-01T00:00:00Z", account=ACCOUNT, service="svc-a", connection="c9", id="ok-1")
    naive = {**good, "id": "bad-1", "time": "2026-03-01T00:00:00"}
    naive_too = {**good, "id": "bad-2", "time": "2026-03-01T00:00:01"}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([json.dumps(good), json.dumps(naive), json.dumps(naive_too), "{oops"]) + "\n")

    output = _ingest(stack_env, path)

    assert "accepted:    1" in output and "rejected:    3" in output
    assert "       2  time has no time zone (RFC 3339 requires Z or an offset)" in output
    assert "malformed JSON" in output


def test_a_database_without_the_schema_is_refused_with_the_command_to_fix_it(tmp_path: Path) -> None:
    env = {"FANMETER_DATA_DIR": str(tmp_path), "FANMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}

    result = run_cli(env, "usage", ACCOUNT, "2026-02")

    assert result.returncode == 1 and "fanmeter db upgrade" in result.stderr
