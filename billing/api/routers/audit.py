"""The append-only audit log, readable per the role table."""

from __future__ import annotations

from fastapi import APIRouter, Query

from billing import audit
from billing.access import require
from billing.accounts import get_account
from billing.api.deps import CallerDep, SessionDep
from billing.api.statement_schemas import AuditEntryOut
from billing.domain.roles import Action
from billing.orm import AuditEntry

router = APIRouter(prefix="/v1", tags=["audit"])
Limit = Query(default=500, ge=1, le=5000)


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut.model_validate(entry, from_attributes=True)


@router.get("/audit", response_model=list[AuditEntryOut])
def all_entries(
    session: SessionDep, caller: CallerDep, account_id: str | None = None, limit: int = Limit
) -> list[AuditEntryOut]:
    """Every account's audit entries, newest first, or one account's with ``?account_id=`` (admin, finance)."""
    require(caller, Action.READ_AUDIT, None)
    return [_out(entry) for entry in audit.entries(session, account_id, limit)]


@router.get("/accounts/{account_id}/audit", response_model=list[AuditEntryOut])
def account_entries(account_id: str, session: SessionDep, caller: CallerDep, limit: int = Limit) -> list[AuditEntryOut]:
    """One account's audit entries, newest first."""
    require(caller, Action.READ_AUDIT, account_id)
    get_account(session, account_id)
    return [_out(entry) for entry in audit.entries(session, account_id, limit)]
