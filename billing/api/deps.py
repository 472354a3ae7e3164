"""FastAPI dependencies: the request's database session, clock and authenticated principal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from billing import access
from billing.domain.roles import Principal
from billing.settings import BillingSettings

READ_METHODS = ("GET", "HEAD")
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer fm_…`")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; services commit, anything uncommitted is rolled back.

    A GET only reads, so its session reads without taking SQLite's write lock.
    """
    factory: sessionmaker[Session] = request.app.state.sessions
    state = request.app.state
    bind = state.read_engine if request.method in READ_METHODS else state.engine
    with factory(bind=bind) as session:
        yield session


# Cheap dependencies are async: FastAPI runs a sync one in a worker thread, a hop per request.
async def get_now(request: Request) -> datetime:
    """The service's clock (tests drive it; production reads the system clock in UTC)."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def get_settings(request: Request) -> BillingSettings:
    settings: BillingSettings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
SettingsDep = Annotated[BillingSettings, Depends(get_settings)]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authenticate(conn: Connection, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller behind the bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = access.principal_on(conn, credentials.credentials)
    if principal is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return principal


def get_principal(request: Request, session: SessionDep, credentials: BearerDep) -> Principal:
    """The caller behind the bearer token; 401 without a valid one."""
    try:
        return authenticate(session.connection(), credentials)
    finally:
        if request.method not in READ_METHODS:
            # End the lookup's transaction: on SQLite a writer's transaction holds the database's
            # write lock, which the handler should take only when it writes.
            session.rollback()


CallerDep = Annotated[Principal, Depends(get_principal)]
