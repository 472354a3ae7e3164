"""The broker's read model of the admin service's schema (``broker.services.database``) is that schema.

The broker imports nothing from ``billing/`` and names the columns it reads itself; here every one
of them is checked against billing's ORM tables on the one ``MetaData`` (a planted wrong name or
type shows the check fails), and the read model's query runs on the migrated database and finds a
service made through billing's tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Boolean, Engine, String, TableClause, column, table
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

import billing.orm  # noqa: F401  (registers billing's tables on the one MetaData)
from billing.access import token_hash
from billing.orm import Account, ApiToken, Backend, Service
from broker.services.database import READ_MODEL, read_rows
from broker.services.rows import AdminRows, BackendRow, ServiceRow, TokenRow
from kernel.db import metadata, read_only

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def _stored(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a value is stored as: a decorated type's implementation (UtcDateTime: BigInteger)."""
    return type_.impl_instance if isinstance(type_, TypeDecorator) else type_


def mismatches(read_model: Iterable[TableClause]) -> list[str]:
    """Each column of ``read_model`` missing from billing's tables, or read as a type it is not stored as."""
    found = []
    for read in read_model:
        owner = metadata.tables.get(read.name)
        if owner is None:
            found.append(f"{read.name}: no such table")
            continue
        for col in read.columns:
            theirs = owner.columns.get(col.name)
            if theirs is None:
                found.append(f"{read.name}.{col.name}: no such column")
            elif not isinstance(_stored(theirs.type), type(_stored(col.type))):
                found.append(f"{read.name}.{col.name}: read as {col.type!r}, stored as {theirs.type!r}")
    return found


def test_every_column_the_read_model_names_is_in_billings_tables_with_a_compatible_type() -> None:
    assert {t.name for t in READ_MODEL} == {"service", "backend", "api_token"}
    assert mismatches(READ_MODEL) == []


@pytest.mark.parametrize(
    ("planted", "reason"),
    [
        (table("api_token", column("token_digest", String)), "api_token.token_digest: no such column"),
        (table("backend", column("use_tls", String)), "backend.use_tls: read as String(), stored as Boolean()"),
        (table("services", column("id", String)), "services: no such table"),
        (
            table("service", column("fanout_enabled", Boolean), column("fanout", Boolean)),
            "service.fanout: no such column",
        ),
    ],
)
def test_a_renamed_column_or_table_or_a_changed_type_fails_the_check(planted: TableClause, reason: str) -> None:
    assert mismatches((*READ_MODEL, planted)) == [reason]


def test_the_read_models_query_finds_a_service_made_through_billings_tables_on_the_migrated_database(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        session.add(Account(id="acc_rm", name="read model", plan="paid", currency="USD", created_at=NOW))
        session.flush()
        for service_id, kind in (("svc_rm", "compute"), ("svc_cdn", "delivery")):
            session.add(Service(id=service_id, account_id="acc_rm", name=service_id, type=kind, fanout_enabled=True,
                                created_at=NOW))  # fmt: skip
        session.flush()
        session.add(Backend(id="be_rm", service_id="svc_rm", name="origin", address="origin.example", use_tls=True,
                            override_host="app.example", settings={"port": 8443}, tls_status="verified",
                            created_at=NOW))  # fmt: skip
        for secret, revoked in (("fm_live", None), ("fm_revoked", NOW)):
            session.add(ApiToken(id=f"tok_{secret}", kind="publish", token_hash=token_hash(secret), prefix=secret,
                                 name="t", account_id="acc_rm", service_id="svc_rm", created_at=NOW,
                                 revoked_at=revoked))  # fmt: skip
        session.commit()

    with read_only(engine).connect() as conn:
        rows = read_rows(conn)

    assert rows == AdminRows(
        services=[ServiceRow("svc_rm", "acc_rm", True)],
        backends=[BackendRow("svc_rm", "origin", "origin.example", True, "app.example", {"port": 8443}, "verified")],
        tokens=[TokenRow("svc_rm", token_hash("fm_live"), "tok_fm_live")],
    )
