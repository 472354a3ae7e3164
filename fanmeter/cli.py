"""The ``fanmeter`` command line. Every command documents itself: ``fanmeter COMMAND --help``."""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from billing import service as billing_service
from fanmeter import ingest as ingest_cli
from metering import migrate
from metering import service as metering_service
from metering.bootstrap import Runtime, bootstrap
from metering.celery_app import app as celery_app
from metering.celery_app import configure, declare_queue
from metering.domain.instants import Month
from metering.domain.usage import UsageReport
from metering.schema import SchemaOutOfDate, require_current_schema


def _runtime(check_schema: bool = True, declare: bool = False) -> Runtime:
    runtime = bootstrap()
    configure(runtime.settings)
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
@click.option("--beat/--no-beat", default=True, show_default=True, help="Also run the periodic rollup sweep.")
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
    runtime = _runtime(declare=True)
    run = ingest_cli.send_files(files, batch_size or runtime.settings.ingest_batch_size)
    progress = ingest_cli.wait_for(runtime.engine, run, timeout)
    click.echo(ingest_cli.report(progress, run))


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
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
def statement(account: str, month: Month, fmt: str) -> None:
    """Print ACCOUNT's statement for MONTH (YYYY-MM, UTC), priced with the default rate card."""
    result = billing_service.statement_for_month(_runtime().engine, account, month, datetime.now(UTC))
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        csv.writer(sys.stdout, lineterminator="\n").writerows(result.to_csv_rows())


@main.command()
@click.option("--once", is_flag=True, help="Exit after printing instead of serving.")
@click.option("--events", default=20_000, show_default=True, help="Simulated events to send.")
def up(once: bool, events: int) -> None:
    """Run everything on the embedded default with simulated demo traffic; print usage and statements."""
    from fanmeter import up as up_command

    up_command.run(once=once, events=events)
