"""Usage alerts of an account: its thresholds (set and removed by a superuser or admin) and their crossings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from billing.alerts import thresholds
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.routers.usage import MonthQuery
from billing.api.schemas_alerts import CrossingOut, ThresholdIn, ThresholdOut
from billing.domain.exceptions import RuleViolation
from kernel.instants import Month

router = APIRouter(prefix="/v1/accounts/{account_id}/usage-alerts", tags=["usage alerts"])
ThresholdPath = Annotated[str, Path(max_length=64, description="A threshold id, e.g. thr_3f9a1c2b7d4e5f60.")]
_SET_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A limit the rules refuse (not above zero, too many decimals) or too many thresholds."}
}


def _month(text: str | None, now_month: Month) -> Month:
    if text is None:
        return now_month
    try:
        return Month.parse(text)
    except ValueError as error:
        raise RuleViolation(f"month: {error}") from None


@router.get("", response_model=list[ThresholdOut])
def list_thresholds(account_id: str, session: SessionDep, caller: CallerDep) -> list[ThresholdOut]:
    """The account's thresholds, oldest first (money ones only for roles that may read statements)."""
    views = thresholds.list_thresholds(session, caller, account_id)
    return [ThresholdOut.model_validate(view.to_json()) for view in views]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ThresholdOut, responses=_SET_RESPONSES)
def set_threshold(
    account_id: str, body: ThresholdIn, session: SessionDep, caller: CallerDep, now: NowDep
) -> ThresholdOut:
    """Add a threshold (superuser of the account, or admin); each crossing fires once per month."""
    view = thresholds.set_threshold(session, caller, account_id, body.measure, body.limit, body.name, now)
    return ThresholdOut.model_validate(view.to_json())


@router.delete("/{threshold_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def remove_threshold(
    account_id: str, threshold_id: ThresholdPath, session: SessionDep, caller: CallerDep, now: NowDep
) -> Response:
    """Remove a threshold (its past crossings stay)."""
    thresholds.remove_threshold(session, caller, account_id, threshold_id, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/crossings", response_model=list[CrossingOut])
def crossings(
    account_id: str,
    session: SessionDep,
    caller: CallerDep,
    now: NowDep,
    month: MonthQuery = None,
) -> list[CrossingOut]:
    """The account's crossings in a month (the current one by default), in the order they happened."""
    views = thresholds.crossings_of(session, caller, account_id, _month(month, Month.of_day(now.date())))
    return [CrossingOut.model_validate(view.to_json()) for view in views]
