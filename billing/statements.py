"""Statements through their lifecycle: open estimates, drafts built in batch, finalization, adjustments.

The rules are in ``billing.domain.ledger``; this module loads rows, calls them and writes the
result in one transaction. docs/decisions.md ("Statements") explains the choices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing import statement_store as store
from billing.domain import ledger
from billing.domain import numbering as numbering_rules
from billing.domain.exceptions import Conflict, NotFound, RuleViolation
from billing.domain.numbering import Numbering
from billing.domain.rate_card_json import CardVersion, card_in_force
from billing.domain.roles import Principal
from billing.domain.statements import Statement
from billing.orm import Account, Adjustment, Service, StatementRecord
from billing.webhooks import events as webhook_events
from billing.webhooks import outbox, payloads
from kernel.instants import Month, to_micros
from metering import service as metering_service
from metering.domain.usage import UsageReport

SYSTEM = "system"  # the audit actor of beat-built drafts
DEFAULT_NUMBERING = Numbering()  # FANMETER_*_NUMBER_PREFIX unset: FM-2026-000123, CN-2026-000007


def load_inputs(conn: Connection, month: Month, only: store.Accounts = None) -> dict[str, ledger.StatementInputs]:
    """Load the inputs of ``month``'s statements for every account (or ``only``), in a few batch queries.

    Of the finalized months a statement carries, only those whose usage revision moved since the
    previous statement recorded it are read and compared (``ledger.months_to_recheck``): the
    others cannot have a prior-period line, so a year of history costs a few small reads.
    """
    accounts = store.account_ids(conn) if only is None else list(only)
    statuses = store.statuses_before(conn, month, only)
    carried = {account: ledger.carried_months(statuses.get(account, {}), month) for account in accounts}
    carried_months = sorted({m for months in carried.values() for m in months})
    # Revisions before usage: a write committed in between moves the revision past the one recorded,
    # so the next draft reads that month again (never the other way round).
    revisions = metering_service.usage_revisions(conn, [month, *carried_months], only)
    usage = metering_service.usage_reports(conn, [month], only)
    versions: dict[str | None, list[CardVersion]] = defaultdict(list)
    for version in store.card_versions(conn, only):
        versions[version.account_id].append(version)
    checked = store.checked_revisions(conn, ledger.previous_month(month), only) if carried_months else {}
    recheck = {}
    for account in accounts:
        mine = {m: revisions[(account, m)] for m in carried[account] if (account, m) in revisions}
        recheck[account] = ledger.months_to_recheck(carried[account], checked.get(account), mine)
    needed = sorted({m for months in recheck.values() for m in months})
    rechecked = [account for account, months in recheck.items() if months]
    narrow = rechecked if len(rechecked) <= 1000 else only  # no huge IN list: then read every account
    snapshots = store.finalized_snapshots(conn, needed[0], month, narrow) if needed else {}
    current = metering_service.usage_reports(conn, needed, narrow)
    adjustments = store.adjustments(conn, month, only)
    inputs = {}
    for account in accounts:
        prior = tuple(
            ledger.PriorPeriod(
                ledger.latest_billed(snapshots.get(account, {}), m) or UsageReport(account, m),
                current.get((account, m)) or UsageReport(account, m),
                card_in_force([*versions[None], *versions.get(account, ())], account, m),
            )
            for m in recheck[account]
        )
        inputs[account] = ledger.StatementInputs(
            usage.get((account, month)) or UsageReport(account, month),
            card_in_force([*versions[None], *versions.get(account, ())], account, month),
            prior,
            tuple(adjustments.get(account, ())),
            {str(m): revisions.get((account, m), 0) for m in [month, *carried[account]]},
        )
    return inputs


def month_closed(month: Month, now: datetime) -> bool:
    """Whether ``month`` has ended at ``now`` (its statement can be a draft)."""
    return to_micros(now) >= month.end_us


@dataclass(frozen=True)
class DraftRun:
    month: Month
    created: int
    updated: int
    unchanged: int
    finalized: int


def build_drafts(
    conn: Connection,
    month: Month,
    now: datetime,
    actor: str = SYSTEM,
    only: store.Accounts = None,
    refresh: bool = True,
) -> DraftRun:
    """Upsert the drafts of ``month`` for every account (or ``only``); finalized statements are never touched.

    With ``refresh`` false only missing drafts are created (the beat's way: a draft finance is
    reviewing changes only when finance regenerates it). The same usage, rates and adjustments
    give the same body, so regenerating twice writes nothing new.
    """
    if not month_closed(month, now):
        raise Conflict(f"{month} has not ended; its statement is an open estimate computed on read")
    stored = store.stored_for_month(conn, month, only)
    if not refresh:
        accounts = store.account_ids(conn, only)
        missing = [account for account in accounts if account not in stored]
        if not missing:
            return DraftRun(month, 0, 0, len(accounts), 0)
        # Usually every draft is missing (the first sweep) or a few (accounts created since);
        # many but not all: load everyone (no huge IN list) and skip the stored ones below.
        only = missing if len(missing) <= 1000 and len(missing) < len(accounts) else only
    inputs = load_inputs(conn, month, only)
    new_rows, changed, entries, notices = [], [], [], []
    counts = {"unchanged": 0, "finalized": 0}
    for account, account_inputs in inputs.items():
        existing = stored.get(account)
        if existing is not None and not refresh:
            counts["unchanged"] += 1
            continue
        statement, billed = account_inputs.build("draft")
        body = statement.to_json()
        if existing is None:
            new_rows.append(_draft_row(account, month, body, billed, dict(account_inputs.revisions), now))
            entries.append(_audit_entry(actor, account, month, "statement.draft", None, body, now))
            notices.append(_drafted(account, body, regenerated=False))
        elif existing.status == ledger.FINALIZED:
            counts["finalized"] += 1
        elif existing.body == body and existing.billed_usage == billed:
            counts["unchanged"] += 1  # its revisions may be older: a later draft then re-reads, never skips wrongly
        else:
            revisions = dict(account_inputs.revisions)
            changed.append({"id": existing.id, "body": body, "billed_usage": billed, "usage_revisions": revisions})
            entries.append(_audit_entry(actor, account, month, "statement.regenerate", existing.body, body, now))
            notices.append(_drafted(account, body, regenerated=True))
    store.insert_statements(conn, new_rows)
    store.update_drafts(conn, changed, now)
    store.insert_audit(conn, entries)
    outbox.record_events(conn, notices, now=now)  # the webhooks of these drafts commit with them
    return DraftRun(month, len(new_rows), len(changed), counts["unchanged"], counts["finalized"])


def build_due_drafts(engine: Engine, now: datetime, grace_hours: int) -> DraftRun:
    """Builds the drafts of the latest month whose grace period has passed (the beat task's service)."""
    month = ledger.due_month(to_micros(now), grace_hours)
    with engine.begin() as conn:
        return build_drafts(conn, month, now, refresh=False)


def _drafted(account: str, body: dict[str, Any], *, regenerated: bool) -> outbox.NewEvent:
    data = payloads.statement_data(body, regenerated=regenerated)
    return outbox.NewEvent(webhook_events.STATEMENT_DRAFTED, account, data)


def _draft_row(
    account: str, month: Month, body: Any, billed: Any, revisions: dict[str, int], now: datetime
) -> dict[str, Any]:
    return {
        "account_id": account,
        "month": str(month),
        "status": "draft",
        "body": body,
        "billed_usage": billed,
        "usage_revisions": revisions,
        "generated_at": now,
    }


def _audit_entry(
    actor: str, account: str, month: Month, action: str, before: Any, after: Any, now: datetime
) -> dict[str, Any]:
    return {
        "at": now,
        "actor": actor,
        "account_id": account,
        "action": action,
        "target": f"statement/{account}/{month}",
        "before": None if before is None else _summary(before),
        "after": None if after is None else _summary(after),
    }


def _summary(body: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a statement body: status, totals, number and hash."""
    return {key: body[key] for key in ("status", "subtotal", "total", "number", "content_hash")}


def _stored(session: Session, account_id: str, month: Month, lock: bool = False) -> StatementRecord | None:
    query = select(StatementRecord).where(StatementRecord.account_id == account_id, StatementRecord.month == str(month))
    query = query.execution_options(populate_existing=True)  # drafts are rewritten through Core
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _require_account(session: Session, account_id: str) -> None:
    if session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id!r}")


def statement_body(session: Session, account_id: str, month: Month) -> dict[str, Any]:
    """Return the stored statement of an account's month, or else the open estimate computed now."""
    _require_account(session, account_id)
    return stored_or_estimate(session, account_id, month)


def stored_or_estimate(session: Session, account_id: str, month: Month) -> dict[str, Any]:
    """The stored draft or finalized body, else the open estimate (also for ids metered but not yet accounts)."""
    record = _stored(session, account_id, month)
    if record is not None:
        return dict(record.body)
    statement, _ = load_inputs(session.connection(), month, [account_id])[account_id].build("open")
    return statement.to_json()


def statement_of(session: Session, account_id: str, month: Month) -> Statement:
    """Return the statement of a month as a value (stored, or the open estimate)."""
    return ledger.statement_from_json(statement_body(session, account_id, month))


@dataclass(frozen=True)
class Summary:
    month: str
    status: str
    total: str
    currency: str
    number: str | None
    content_hash: str | None
    generated_at: datetime | None
    finalized_at: datetime | None


def list_statements(session: Session, account_id: str, now: datetime) -> list[Summary]:
    """The account's stored statements, newest first, after the open estimate of the current month."""
    _require_account(session, account_id)
    records = session.scalars(
        select(StatementRecord).where(StatementRecord.account_id == account_id).order_by(StatementRecord.month.desc())
    )
    summaries = [
        Summary(
            r.month,
            r.status,
            r.body["total"],
            r.body["currency"],
            r.number,
            r.content_hash,
            r.generated_at,
            r.finalized_at,
        )
        for r in records
    ]
    current = Month.of(to_micros(now))
    if not any(s.month == str(current) for s in summaries):
        body = statement_body(session, account_id, current)
        summaries.insert(0, Summary(str(current), "open", body["total"], body["currency"], None, None, None, None))
    return summaries


def regenerate(session: Session, principal: Principal, account_id: str, month: Month, now: datetime) -> dict[str, Any]:
    """Rebuild (or first build) one account's draft of a closed month; a finalized one is refused (409)."""
    _require_account(session, account_id)
    for attempt in range(2):
        _refuse_if_finalized(_stored(session, account_id, month, lock=True), "regenerated")
        try:
            build_drafts(session.connection(), month, now, actor=principal.actor, only=[account_id])
            session.commit()
            break
        except IntegrityError:  # the beat inserted this draft meanwhile: rebuild it as an update
            session.rollback()
            if attempt:
                raise Conflict("the draft is being built concurrently; retry") from None
    return statement_body(session, account_id, month)


def finalize(
    session: Session,
    principal: Principal,
    account_id: str,
    month: Month,
    now: datetime,
    numbering: Numbering = DEFAULT_NUMBERING,
) -> dict[str, Any]:
    """Finalize the stored draft as reviewed: number it, hash it, and never change it again.

    The number is the next of the statement sequence in the year of ``now``, taken in this
    transaction (``billing.domain.numbering``): concurrent finalizations queue on the counter row.
    """
    _require_account(session, account_id)
    record = _stored(session, account_id, month, lock=True)
    _refuse_if_finalized(record, "finalized again")
    if record is None:
        raise Conflict(f"{month} has no draft statement yet; regenerate it first, then review and finalize")
    number = take_number(session.connection(), numbering, numbering_rules.STATEMENT, now)
    before = dict(record.body)
    record.body = ledger.finalized_body(before, number)
    record.status, record.number = ledger.FINALIZED, number
    record.content_hash = record.body["content_hash"]
    record.finalized_at, record.finalized_by = now, principal.actor
    entry = _audit_entry(principal.actor, account_id, month, "statement.finalize", before, record.body, now)
    store.insert_audit(session.connection(), [entry])
    finalized = payloads.statement_data(record.body)
    outbox.record_event(session.connection(), webhook_events.STATEMENT_FINALIZED, account_id, finalized, now=now)
    session.commit()
    return dict(record.body)


def take_number(conn: Connection, numbering: Numbering, sequence: str, now: datetime) -> str:
    """Take the next number of ``sequence`` (statements or credit notes) for a document issued at ``now``."""
    period = numbering.period(to_micros(now))
    return numbering.number(sequence, period, store.take_number(conn, sequence, period))


def next_number(conn: Connection, numbering: Numbering, sequence: str, now: datetime) -> str:
    """The number the next document of ``sequence`` issued at ``now`` would take (nothing is taken)."""
    period = numbering.period(to_micros(now))
    return numbering.number(sequence, period, store.last_number(conn, sequence, period) + 1)


def _refuse_if_finalized(record: StatementRecord | None, what: str) -> None:
    if record is not None and record.status == ledger.FINALIZED:
        raise Conflict(
            f"statement {record.number} of {record.account_id} for {record.month} is finalized and cannot be {what}; "
            "corrections go on a later statement as adjustments"
        )


def add_adjustment(
    session: Session,
    principal: Principal,
    account_id: str,
    month: Month,
    *,
    amount: Decimal,
    reason: str,
    service_id: str | None,
    now: datetime,
) -> Adjustment:
    """Add an adjustment or credit to a month that is not finalized; a draft is rebuilt to show it.

    Its service, if it names one, must be the account's (404 otherwise), whoever calls: the API,
    the console or the demo.
    """
    _require_account(session, account_id)
    _require_known_service(session, account_id, month, service_id)
    record = _stored(session, account_id, month, lock=True)
    _refuse_if_finalized(record, "adjusted")
    if not reason.strip():
        raise RuleViolation("an adjustment needs a reason")
    row = Adjustment(
        account_id=account_id,
        month=str(month),
        amount=amount,
        reason=reason,
        service_id=service_id,
        created_at=now,
        created_by=principal.actor,
    )
    session.add(row)
    after = {"month": str(month), "amount": format(amount, "f"), "reason": reason, "service_id": service_id}
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="statement.adjustment",
        target=f"statement/{account_id}/{month}",
        before=None,
        after=after,
        now=now,
    )
    session.flush()
    if record is not None:
        build_drafts(session.connection(), month, now, actor=principal.actor, only=[account_id])
    session.commit()
    return row


def _require_known_service(session: Session, account_id: str, month: Month, service_id: str | None) -> None:
    """An adjustment's service is one of the account's: configured, or billed on the month's statement
    (usage can name services configured elsewhere). Anything else, another account's included, is 404."""
    if service_id is None:
        return
    service = session.get(Service, service_id)
    if service is not None and service.account_id == account_id:
        return
    if any(line.service_id == service_id for line in statement_of(session, account_id, month).lines):
        return
    raise NotFound(f"account {account_id} has no service {service_id!r} (none configured, none billed in {month})")


def adjustments_of(session: Session, account_id: str, month: Month) -> Sequence[Adjustment]:
    """The adjustments and credits of one account's month, oldest first."""
    query = select(Adjustment).where(Adjustment.account_id == account_id, Adjustment.month == str(month))
    return list(session.scalars(query.order_by(Adjustment.id)))
