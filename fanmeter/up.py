"""`fanmeter up`: the whole pipeline on one machine, fed with simulated traffic.

What it prints, in order: where to sign in (``print_console_links``), the demo traffic's
ingest counts, one table of every demo account's statements (the month before last, last
month and this one), the live broker's traffic, and the commands to try. The worker's, the
admin service's, the broker's and the demo origin's own output goes to log files in the data
directory, named once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing import statements
from billing.console import links as console_links
from billing.domain.roles import Principal
from billing.settings import BillingSettings
from fanmeter import demo, demo_people, live_demo, migrate
from fanmeter import ingest as ingest_cli
from fanmeter.pipeline import compose
from kernel.instants import Month, to_micros
from metering import service as metering_service
from metering.bootstrap import bootstrap
from metering.celery_app import declare_queue
from metering.client import PipelineClient


def run(once: bool, events: int) -> None:
    """Migrate, start a worker and the admin service, send demo traffic, settle statements, print a summary;
    then start a broker and a demo origin and meter real clients and publishes through them.

    SIGTERM stops it as Ctrl-C does: every process it started is stopped (``STOP_S``), then it exits 143."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    runtime = bootstrap()
    compose(runtime.settings)
    declare_queue()
    migrate.upgrade(runtime.engine.url.render_as_string(hide_password=False))
    now = datetime.now(UTC)
    this_month = Month.of(to_micros(now))
    data_dir = runtime.settings.data_dir
    logs = {name: data_dir / f"{name}.log" for name in ("worker", "admin")}
    children: list[subprocess.Popen[bytes]] = []
    try:
        worker = _logged([sys.executable, "-m", "fanmeter", "worker", "--loglevel=WARNING"], logs["worker"])
        children.append(worker)
        admin = _logged([sys.executable, "-m", "fanmeter", "admin"], logs["admin"])
        children.append(admin)
        ids = demo.seed_catalog(runtime.engine, now)
        people = demo_people.seed(runtime.engine, now)
        settings = BillingSettings()
        url = f"http://{settings.admin_host}:{settings.admin_port}"
        if _answers(f"{url}/healthz", admin):
            print_console_links(url, people, runtime.engine, now)
        else:
            click.echo(
                f"the admin service did not start on {url} (is the port taken? set FANMETER_ADMIN_PORT)", err=True
            )
            click.echo(_tail(logs["admin"]), err=True)
        if worker.poll() is not None:  # it checks the schema and its broker first: a failure shows by now
            raise click.ClickException(f"the worker exited; the end of {logs['worker']}:\n{_tail(logs['worker'])}")
        click.echo(f"\nlogs: {logs['worker']} (worker), {logs['admin']} (admin service)")
        click.echo(f"database: {runtime.engine.url.render_as_string(hide_password=True)}")

        path = data_dir / "demo-events.jsonl"
        written = demo.write_demo_file(str(path), now, events, ids)
        start = demo.previous_month(demo.previous_month(this_month)).first_day
        click.echo(
            f"\nsending {written} simulated events (daily traffic since {start}, {events} around "
            f"{this_month.first_day} 00:00 UTC) from {path}"
        )
        pipeline = PipelineClient(runtime.engine)
        tty = sys.stdout.isatty()
        sent = ingest_cli.send_files(pipeline, [path], runtime.settings.ingest_batch_size, show_progress=tty)
        progress = ingest_cli.wait_for(pipeline, sent, timeout_s=600, show_progress=tty)
        click.echo(ingest_cli.report(progress, sent))

        finance = next(p for p in people if p.role == "finance")
        principal = Principal(token_id="fanmeter-up", kind="user", role="finance", user_id=finance.user_id)
        demo.finance_review(runtime.engine, principal, ids, now)
        months = [demo.previous_month(demo.previous_month(this_month)), demo.previous_month(this_month), this_month]
        click.echo("\n" + summary_table(runtime.engine, months))

        with live_demo.running(data_dir) as live:
            _live_traffic(runtime.engine, live, this_month)
            click.echo(f"logs: {data_dir / live_demo.LOG} (broker and demo origin)")
            if not once:
                click.echo(
                    f"\nworker, broker and admin service running; try `fanmeter usage acme {this_month}` "
                    f"or `fanmeter statement acme {months[1]} --format pdf > statement.pdf`. Ctrl-C stops."
                )
                _serve_until_interrupted()
    finally:
        _stop_all(list(reversed(children)))


def print_console_links(url: str, people: Sequence[demo_people.DemoPerson], engine: Engine, now: datetime) -> None:
    """Where to sign in, printed first: the service's address, the console's, and per demo person
    a bearer token and a one-time console sign-in link (15 minutes)."""
    click.echo(f"admin service: {url} (API docs at {url}/docs and {url}/redoc)")
    click.echo(f"console: {url}/console/ (each link below signs its person in once, within 15 minutes)")
    for person in people:
        account = demo.BY_ID.get(person.where)
        note = " (a trial account)" if account and account.plan == "trial" else ""
        click.echo(f"  {person.role:<9} ({person.where:<8}) Authorization: Bearer {person.token}{note}")
        click.echo(f"    sign in: {console_links.link_for_token(engine, person.token, now, url)}")


def summary_table(engine: Engine, months: Sequence[Month]) -> str:
    """One row per demo account and month: status, usage, total and number of its statement."""
    header = (
        f"{'account':<18} {'month':<7}  {'status':<9} {'minutes':>10} {'messages':>13} {'GB out':>9} "
        f"{'total':>14}  number"
    )
    lines = ["statements (the open month is an estimate of the month so far)", header, "-" * len(header)]
    with Session(engine) as session:
        for account in demo.ACCOUNTS:
            label = f"{account.id} (trial)" if account.plan == "trial" else account.id
            for month in months:
                usage = metering_service.usage_for_month(engine, account.id, month)
                body = statements.stored_or_estimate(session, account.id, month)
                lines.append(_row(label if month == months[0] else "", month, usage.to_json(), body))
    return "\n".join(lines)


def _row(label: str, month: Month, usage: dict[str, Any], body: dict[str, Any]) -> str:
    total = f"{Decimal(body['total']):,.2f} {body['currency']}"
    return (
        f"{label:<18} {str(month):<7}  {body['status']:<9} {usage['connection_minutes']:>10,} "
        f"{usage['messages']:>13,} {usage['bytes_out'] / 1e9:>9,.1f} {total:>14}  {body['number'] or ''}"
    ).rstrip()


def _logged(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child whose output goes to ``log`` (appended), not to the terminal."""
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _tail(log: Path, lines: int = 5) -> str:
    """The last lines of a child's log, for a message saying why it stopped."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(f"  {line}" for line in text.strip().splitlines()[-lines:])


def _answers(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False


# How long the processes `up` started get to stop on SIGTERM (the worker finishes the task in hand,
# the broker hands its held connections back) before they and their children are killed.
STOP_S = 15.0


def _on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM (kill, systemd, a container runtime) unwinds `up` like Ctrl-C, so its children are stopped."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the stopping short
    click.echo("stopping (SIGTERM)", err=True)
    raise SystemExit(128 + signum)


def _stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = STOP_S) -> None:
    """SIGTERM every process at once, wait up to ``timeout_s`` in all, then kill what is left with its children."""
    live_demo.stop_all(processes, timeout_s)


def _live_traffic(engine: Engine, live: live_demo.LiveDemo, month: Month) -> None:
    """Real clients and publishes through the broker; print the usage the pipeline metered for them."""
    click.echo(f"\nlive traffic: broker {live.broker_url} in front of the demo origin {live.origin_url}")
    received = live_demo.traffic(live)
    expected = live_demo.MESSAGES * (1 + live_demo.CLIENTS)  # published in + delivered out
    deadline = time.monotonic() + 120
    usage = metering_service.usage_for_month(engine, live_demo.ACCOUNT, month)
    while (usage.messages < expected or usage.connection_minutes < live_demo.CLIENTS) and time.monotonic() < deadline:
        time.sleep(0.5)
        usage = metering_service.usage_for_month(engine, live_demo.ACCOUNT, month)
    click.echo(
        f"{live_demo.CLIENTS} clients received {received} messages; metered usage of {live_demo.ACCOUNT}: "
        f"{usage.connection_minutes} connection minutes, {usage.messages_published} messages published, "
        f"{usage.messages_delivered} delivered, {usage.bytes_out:,} bytes out"
    )
    click.echo(f"connect: curl -N {live.client_url}")
    click.echo(
        f"publish: curl -H 'Authorization: Bearer {live_demo.TOKEN}' -d "
        f'\'{{"items":[{{"channel":"news","formats":{{"http-stream":{{"content":"hi\\n"}}}}}}]}}\' '
        f"{live.publish_url}"
    )


def _serve_until_interrupted() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
