"""`fanmeter up`: the whole pipeline on one machine, fed with simulated traffic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import click
import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing import statements
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
    """Migrate, start a worker, send demo traffic across the last month boundary, print the results;
    then start a broker and a demo origin and meter real clients and publishes through them."""
    runtime = bootstrap()
    compose(runtime.settings)
    declare_queue()
    migrate.upgrade(runtime.engine.url.render_as_string(hide_password=False))
    now = datetime.now(UTC)
    this_month = Month.of(to_micros(now))
    previous = Month(this_month.year - 1, 12) if this_month.month == 1 else Month(this_month.year, this_month.month - 1)
    worker = subprocess.Popen([sys.executable, "-m", "fanmeter", "worker", "--loglevel=WARNING"])
    children = [worker]
    try:
        path = runtime.settings.data_dir / "demo-events.jsonl"
        demo.write_demo_file(str(path), this_month.start_us, events)
        click.echo(f"sending {events} simulated events around {this_month.first_day} 00:00 UTC from {path}")
        pipeline = PipelineClient(runtime.engine)
        sent = ingest_cli.send_files(pipeline, [path], runtime.settings.ingest_batch_size)
        click.echo(ingest_cli.report(ingest_cli.wait_for(pipeline, sent, timeout_s=600), sent))
        for account in sorted(demo.ACCOUNTS):
            for month in (previous, this_month):
                usage = metering_service.usage_for_month(runtime.engine, account, month)
                with Session(runtime.engine) as session:
                    statement = statements.stored_or_estimate(session, account, month)
                click.echo(f"\n== {account} {month} ==")
                click.echo(json.dumps({"usage": usage.to_json(), "statement": statement}, indent=2))
        click.echo(f"\ndatabase: {runtime.engine.url.render_as_string(hide_password=True)}")
        admin = _start_admin(runtime.engine, now)
        if admin is not None:
            children.append(admin)
        with live_demo.running(runtime.settings.data_dir) as live:
            _live_traffic(runtime.engine, live, this_month)
            if not once:
                click.echo(
                    "worker, broker and admin service running; try `fanmeter usage acme "
                    + str(this_month)
                    + "`. Ctrl-C stops."
                )
                _serve_until_interrupted()
    finally:
        for child in reversed(children):
            _stop(child)


def _start_admin(engine: Engine, now: datetime) -> subprocess.Popen[bytes] | None:
    """Start the admin service, wait until it answers, print its URL and a demo token per role."""
    settings = BillingSettings()
    tokens = demo_people.seed(engine, now)
    url = f"http://{settings.admin_host}:{settings.admin_port}"
    process = subprocess.Popen([sys.executable, "-m", "fanmeter", "admin"], stderr=subprocess.DEVNULL)
    if not _answers(f"{url}/healthz", process):
        _stop(process)
        click.echo(f"the admin service did not start on {url} (is the port taken? set FANMETER_ADMIN_PORT)", err=True)
        return None
    click.echo(f"\nadmin service: {url} (OpenAPI at {url}/docs)")
    for role, secret in tokens.items():
        where = "platform" if role in ("admin", "finance") else demo_people.PEOPLE_ACCOUNT
        click.echo(f"  {role:<9} ({where:<8}) Authorization: Bearer {secret}")
    return process


def _answers(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _live_traffic(engine: Engine, live: live_demo.LiveDemo, month: Month) -> None:
    """Real clients and publishes through the broker; print the usage the pipeline metered for them."""
    click.echo(f"\nbroker {live.broker_url} in front of the demo origin {live.origin_url}")
    received = live_demo.traffic(live)
    expected = live_demo.MESSAGES * (1 + live_demo.CLIENTS)  # published in + delivered out
    deadline = time.monotonic() + 120
    usage = metering_service.usage_for_month(engine, live_demo.ACCOUNT, month)
    while (usage.messages < expected or usage.connection_minutes < live_demo.CLIENTS) and time.monotonic() < deadline:
        time.sleep(0.5)
        usage = metering_service.usage_for_month(engine, live_demo.ACCOUNT, month)
    click.echo(f"{live_demo.CLIENTS} clients received {received} messages; metered usage of {live_demo.ACCOUNT}:")
    click.echo(json.dumps(usage.to_json(), indent=2))
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
