"""The default rate card and per-account contract overrides, versioned by effective month."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query

from billing import rates
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.statement_schemas import MONTH_PATTERN, RateCardIn, RateCardOut
from billing.domain.exceptions import RuleViolation
from billing.domain.roles import Action
from kernel.instants import Month, to_micros

router = APIRouter(prefix="/v1", tags=["rate cards"])
MonthQuery = Query(default=None, pattern=MONTH_PATTERN, description="YYYY-MM (UTC); default: the current month.")


def parse_month(text: str) -> Month:
    """A ``YYYY-MM`` path or query value, or a 400 saying what is wrong."""
    try:
        return Month.parse(text)
    except ValueError as error:
        raise RuleViolation(str(error)) from None


def _out(card: rates.CardInForce) -> RateCardOut:
    return RateCardOut.model_validate({**asdict(card), "month": str(card.month)})


@router.get("/rate-cards/default", response_model=RateCardOut)
def get_default(session: SessionDep, caller: CallerDep, now: NowDep, month: str | None = MonthQuery) -> RateCardOut:
    """The default card in force for a month (platform admin and finance)."""
    require(caller, Action.READ_STATEMENTS, None)
    return _out(rates.card_for(session, None, parse_month(month) if month else Month.of(to_micros(now))))


@router.put("/rate-cards/default", response_model=RateCardOut)
def put_default(body: RateCardIn, session: SessionDep, caller: CallerDep, now: NowDep) -> RateCardOut:
    """Add a version of the default card, effective from a month on; audited."""
    require(caller, Action.SET_RATES, None)
    card = rates.set_card(session, caller, None, body.card.model_dump(), parse_month(body.effective_month), now)
    return _out(card)


@router.get("/accounts/{account_id}/rate-card", response_model=RateCardOut)
def get_account_card(
    account_id: str, session: SessionDep, caller: CallerDep, now: NowDep, month: str | None = MonthQuery
) -> RateCardOut:
    """The card that prices an account's month: its contract override, else the default card."""
    require(caller, Action.READ_STATEMENTS, account_id)
    return _out(rates.card_for(session, account_id, parse_month(month) if month else Month.of(to_micros(now))))


@router.put("/accounts/{account_id}/rate-card", response_model=RateCardOut)
def put_account_card(
    account_id: str, body: RateCardIn, session: SessionDep, caller: CallerDep, now: NowDep
) -> RateCardOut:
    """Set an account's contract rates from a month on (a new version; nothing is overwritten); audited."""
    require(caller, Action.SET_RATES, account_id)
    card = rates.set_card(session, caller, account_id, body.card.model_dump(), parse_month(body.effective_month), now)
    return _out(card)
