"""The ``fanmeter`` command line. Every command documents itself: ``fanmeter COMMAND --help``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import click
from sqlalchemy.orm import Session

from billing import credit_notes, csv_safe, statements
from billing.domain import ledger
from billing.domain.credit_notes import statement_csv_rows
from billing.pdf import render_pdf
from fanmeter import ingest as ingest_cli
from fanmeter import migrate
from fanmeter.pipeline import compose
from fanmeter.schema import SchemaOutOfDate, require_current_schema
from kernel.instants import Month
from metering import service as metering_service
from metering.bootstrap import Runtime, bootstrap
from metering.celery_app import app as celery_app  # composed by fanmeter.pipeline in _runtime
from metering.celery_app import declare_queue
from metering.client import PipelineClient, ServiceUnavailable
from metering.domain.usage import UsageReport


def _runtime(check_schema: bool = True, declare: bool = False) -> Runtime:
    runtime = bootstrap()
    compose(runtime.settings)
    if declare:
        declare_queue()
    if check_schema:
        try:
            require_current_schema(runtime.engine)
        except SchemaOutOfDate as error:
            raise click.ClickException(str(error)) from None
    return runtime


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.group()
def main() -> None:
    """fanmeter: a self-hosted pub-sub broker with billing-grade usage metering.

    Configuration comes from FANMETER_* environment variables (see README); with none
    set everything runs on the embedded default under ./var.
    """


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def db_upgrade(revision: str) -> None:
    """Apply every migration up to REVISION (idempotent)."""
    runtime = _runtime(check_schema=False)
    url = runtime.engine.url.render_as_string(hide_password=False)
    migrate.upgrade(url, revision)
    click.echo(f"database at {revision}: {runtime.engine.url.render_as_string(hide_password=True)}")


@main.command()
@click.option("--concurrency", "-c", default=2, show_default=True, help="Tasks run at once (threads or processes).")
# Prefork by default: decoding and folding are Python, so only processes put them on more than one
# core; with threads, rollup passes and batch decoding share one interpreter lock (bench/ingest.py,
# 1,000,000 events on 2 cores: prefork 40,800 events/s, threads 28,800). Threads use one process's
# memory instead of three.
@click.option("--pool", type=click.Choice(["prefork", "threads"]), default="prefork", show_default=True)
@click.option("--beat/--no-beat", default=True, show_default=True, help="Also run rollup sweeps and draft builds.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Celery node name (default: fanmeter-PID@host).")
def worker(concurrency: int, pool: str, beat: bool, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker of the metering pipeline."""
    runtime = _runtime(declare=True)
    argv = ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", f"--pool={pool}"]
    argv += ["--without-gossip", "--without-mingle"]
    # A node name of its own per process: two workers on one host must not share a pidbox queue.
    argv.append(f"--hostname={hostname or f'fanmeter-{os.getpid()}@%h'}")
    if beat:
        argv += ["--beat", f"--schedule={runtime.settings.data_dir.resolve() / 'celerybeat-schedule'}"]
    celery_app.worker_main(argv)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 100_000), help="Events per Celery message.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the pipeline.")
def ingest(files: tuple[Path, ...], batch_size: int | None, timeout: float) -> None:
    """Send CloudEvents FILES (JSON lines or batch arrays) through the pipeline and wait until processed.

    Prints accepted, duplicate and rejected counts, with rejection reasons grouped.
    Needs a running worker (`fanmeter worker`).
    """
    runtime = _runtime(check_schema=False)
    try:
        # Waits out a restart of the database or the message broker, saying once on stderr what it
        # waits for; gives up after FANMETER_WAIT_FOR_SERVICES_SECONDS with one line and exit 1.
        pipeline = PipelineClient(runtime.engine, on_wait=lambda line: click.echo(line, err=True))
        pipeline.retrying(lambda: _require_schema(runtime))
        run = ingest_cli.send_files(pipeline, files, batch_size or runtime.settings.ingest_batch_size)
        progress = ingest_cli.wait_for(pipeline, run, timeout)
    except ServiceUnavailable as error:
        raise click.ClickException(
            f"{error}. Run the same command again to finish: events already recorded are not counted twice."
        ) from None
    click.echo(ingest_cli.report(progress, run))


def _require_schema(runtime: Runtime) -> None:
    try:
        require_current_schema(runtime.engine)
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("account")
@click.argument("month", callback=_month)
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="table", show_default=True)
def usage(account: str, month: Month, fmt: str) -> None:
    """Print ACCOUNT's usage for MONTH (YYYY-MM, UTC)."""
    report = metering_service.usage_for_month(_runtime().engine, account, month)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else usage_table(report))


def usage_table(report: UsageReport) -> str:
    """A fixed-width table of a usage report, one row per service and a total."""
    header = f"{'service':<24} {'conn. minutes':>14} {'published':>12} {'delivered':>12} {'bytes out':>16}"
    lines = [f"usage of {report.account_id} in {report.month} (UTC)", header, "-" * len(header)]
    for s in report.services:
        lines.append(
            f"{s.service_id:<24} {s.connection_minutes:>14,} {s.messages_published:>12,} "
            f"{s.messages_delivered:>12,} {s.bytes_out:>16,}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<24} {report.connection_minutes:>14,} {report.messages_published:>12,} "
        f"{report.messages_delivered:>12,} {report.bytes_out:>16,}"
    )
    lines.append(f"billable messages (published + delivered): {report.messages:,}")
    return "\n".join(lines)


@main.command()
@click.argument("account")
@click.argument("month", callback=_month)
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf"]), default="json", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (pdf default: ./statement-ACCOUNT-MONTH.pdf).",
)
def statement(account: str, month: Month, fmt: str, output: Path | None) -> None:
    """Print ACCOUNT's statement for MONTH (YYYY-MM, UTC).

    The stored draft or finalized statement when there is one, else the open estimate
    priced now with the account's rate card; a finalized one with its credit notes.
    """
    with Session(_runtime().engine) as session:
        body = credit_notes.annotated(session, statements.stored_or_estimate(session, account, month))
        notes = credit_notes.notes_of(session, account, month)
    result = ledger.statement_from_json(body)
    if fmt == "pdf":
        target = output or Path(f"statement-{account}-{month}.pdf")
        target.write_bytes(render_pdf(result, notes))
        after = f", credit notes: {len(notes)}, remaining {body['remaining']} {result.currency}" if notes else ""
        click.echo(f"wrote {target} ({result.status}, total {body['total']} {result.currency}{after})")
        return
    text = io.StringIO()
    if fmt == "json":
        text.write(json.dumps(body, indent=2) + "\n")
    else:
        csv_safe.writer(text).writerows(statement_csv_rows(result, notes))  # as the API exports it: no formulas
    if output is None:
        click.echo(text.getvalue(), nl=False)
    else:
        output.write_text(text.getvalue())


@main.command()
@click.option("--once", is_flag=True, help="Exit after printing instead of serving.")
@click.option("--events", default=20_000, show_default=True, help="Simulated events to send.")
def up(once: bool, events: int) -> None:
    """Run everything on the embedded default with simulated demo traffic; print usage and statements.

    Then start a broker (port 7999 if free) in front of a demo origin, connect real clients,
    publish through the publish API and print the usage metered for them (account live-demo).
    """
    from fanmeter import up as up_command

    up_command.run(once=once, events=events)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=7999, show_default=True, help="Port for clients and the publish API.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Services file (TOML or JSON); default: FANMETER_BROKER_CONFIG, else the database.")  # fmt: skip
@click.option(
    "--node", help="This node's name (events' source broker/<node>); default: FANMETER_BROKER_NODE or the host name."
)
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Serve GET /metrics (Prometheus) on this port of FANMETER_BROKER_METRICS_HOST (127.0.0.1); "
                   "default: FANMETER_BROKER_METRICS_PORT, else none.")  # fmt: skip
def broker(host: str, port: int, config_path: Path | None, node: str | None, metrics_port: int | None) -> None:
    """Serve the GRIP broker: client transports, the publish API, metering to the pipeline.

    Clients reach a service at /s/<service_id>/... or by a Host the service lists; publishers
    POST to /service/<service_id>/publish/; with --metrics-port, Prometheus scrapes GET /metrics on
    that port (never on the client port). Services come from --config, else from the admin
    service's database (FANMETER_GRIP_SECRET needed). Needs a running worker to ship metering events
    (`fanmeter worker`); events wait in the node's outbox until it runs.
    """
    from broker import bootstrap as broker_bootstrap
    from broker.exceptions import ConfigError
    from broker.settings import BrokerSettings

    overrides: dict[str, object] = {}
    if config_path is not None:
        overrides["broker_config"] = config_path
    if node:
        overrides["broker_node"] = node
    if metrics_port is not None:
        overrides["broker_metrics_port"] = metrics_port
    try:
        settings = BrokerSettings().model_copy(update=overrides)
    except ValueError as error:  # pydantic's ValidationError: a setting that is not one (a bad CIDR...)
        raise click.ClickException(f"invalid broker setting: {error}") from None
    if settings.broker_metrics_port == port:
        raise click.ClickException(f"the metrics port cannot be the client port ({port}): clients would see it")
    try:
        app = broker_bootstrap.build(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    source = settings.broker_config or f"the database, read every {settings.broker_reload_seconds:g} s"
    click.echo(f"broker {settings.broker_node} on http://{host}:{port} serving {len(app.config.services)} services"
               f" from {source}")  # fmt: skip
    if settings.broker_metrics_port is not None:
        click.echo(f"metrics on http://{settings.broker_metrics_host}:{settings.broker_metrics_port}/metrics")
    broker_bootstrap.run(app, settings, host, port)


@main.command("pushpin-stats")
@click.option("--stats-spec", required=True, help="Pushpin's stats_spec, e.g. ipc:///run/pushpin/pushpin-stats.")
@click.option("--route-map", "route_map_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML/JSON mapping Pushpin routes and channel prefixes to accounts and services.")  # fmt: skip
@click.option("--node", help="Names this Pushpin deployment (events' source pushpin/<node>); default: the host name.")
def pushpin_stats(stats_spec: str, route_map_path: Path, node: str | None) -> None:
    """Bill an existing Pushpin: turn its stats records (stats_format=json) into metering events.

    Connections become open/alive/close events, relayed items delivered counts, and the global
    route's report published counts; they go through a local durable outbox to the pipeline.
    Needs a running worker (`fanmeter worker`). Stops on SIGTERM or Ctrl-C.
    """
    import logging
    import signal
    import socket
    import threading

    from broker.settings import BrokerSettings
    from fanmeter.pushpin_stats import adapter
    from fanmeter.pushpin_stats.routemap import RouteMapError, load_route_map
    from fanmeter.pushpin_stats.translate import Translator

    try:
        route_map = load_route_map(route_map_path)
    except RouteMapError as error:
        raise click.ClickException(str(error)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = BrokerSettings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    name = node or socket.gethostname()
    click.echo(f"pushpin-stats {name}: outbox {adapter.outbox_path(settings, name)}")
    try:
        done = adapter.serve(settings, stats_spec, Translator(name, route_map), stop)
    except adapter.AdapterError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"pushpin-stats {name}: {done.records} records, {done.events} events, "
               f"{done.bad} bad, {done.skipped} skipped")  # fmt: skip


@main.command("grip-key")
@click.argument("service_id")
def grip_key(service_id: str) -> None:
    """Print the GRIP key of SERVICE_ID: its origin validates Grip-Sig with it (services from the database).

    Derived from FANMETER_GRIP_SECRET, so it prints the key brokers sharing that secret sign with.
    """
    from broker.exceptions import ConfigError
    from broker.services.rows import grip_key as derive
    from broker.settings import BrokerSettings

    try:
        click.echo(derive(BrokerSettings().required_grip_secret(), service_id))
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _register_admin_commands() -> None:
    from fanmeter import admin_cli, alerts_cli, webhooks_cli

    main.add_command(admin_cli.admin)
    main.add_command(admin_cli.token)
    main.add_command(alerts_cli.alerts)
    main.add_command(webhooks_cli.webhooks)


_register_admin_commands()
