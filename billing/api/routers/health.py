"""``/healthz``: the service answers and its database too."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from billing.api.deps import SessionDep
from billing.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz(session: SessionDep) -> Health:
    """Answer ok when the service can reach its database."""
    session.execute(text("SELECT 1"))
    return Health(status="ok", database="ok")
