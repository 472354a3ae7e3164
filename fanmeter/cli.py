"""The ``fanmeter`` command line. Every command documents itself: ``fanmeter COMMAND --help``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import click
from sqlalchemy.orm import Session

from billing import statements
from billing.domain import ledger
from billing.pdf import render_pdf
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
@click.option("--concurrency", "-c", default=2, show_default=True, help="Worker processes.")
@click.option("--beat/--no-beat", default=True, show_default=True, help="Also run rollup sweeps and draft builds.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Celery node name (default: fanmeter-PID@host).")
def worker(concurrency: int, beat: bool, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker of the metering pipeline."""
    runtime = _runtime(declare=True)
    argv = ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]
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
    priced now with the account's rate card.
    """
    with Session(_runtime().engine) as session:
        result = ledger.statement_from_json(statements.stored_or_estimate(session, account, month))
    if fmt == "pdf":
        target = output or Path(f"statement-{account}-{month}.pdf")
        target.write_bytes(render_pdf(result))
        click.echo(f"wrote {target} ({result.status}, total {result.to_json()['total']} {result.currency})")
        return
    text = io.StringIO()
    if fmt == "json":
        text.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        csv.writer(text, lineterminator="\n").writerows(result.to_csv_rows())
    if output is None:
        click.echo(text.getvalue(), nl=False)
    else:
        output.write_text(text.getvalue())


@main.command()
@click.option("--once", is_flag=True, help="Exit after printing instead of serving.")
@click.option("--events", default=20_000, show_default=True, help="Simulated events to send.")
def up(once: bool, events: int) -> None:
    """Run everything on the embedded default with simulated demo traffic; print usage and statements."""
    from fanmeter import up as up_command

    up_command.run(once=once, events=events)


def _register_admin_commands() -> None:
    from fanmeter import admin_cli

    main.add_command(admin_cli.admin)
    main.add_command(admin_cli.token)


_register_admin_commands()
