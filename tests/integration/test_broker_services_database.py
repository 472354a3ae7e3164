"""The broker's reading of the admin service's tables, on the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing.access import token_hash
from billing.orm import Account, ApiToken, Backend, Service
from broker.services.database import DatabaseServices
from broker.services.rows import grip_key
from kernel.db import read_only

SECRET = "integration-grip-secret-0123456789"
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def seed(engine: Engine, *rows: Any) -> None:
    with Session(engine) as session:
        session.add(Account(id="acc_1", name="one", plan="paid", currency="USD", created_at=NOW))
        session.flush()
        for row in rows:
            session.add(row)
            session.flush()
        session.commit()


def service(service_id: str, type_: str = "compute", fanout: bool = True) -> Service:
    return Service(
        id=service_id, account_id="acc_1", name=service_id, type=type_, fanout_enabled=fanout, created_at=NOW
    )


def backend(service_id: str, name: str = "origin", **fields: Any) -> Backend:
    values: dict[str, Any] = {"address": "origin.example", "use_tls": False, "override_host": None, "settings": {}}
    values |= {"tls_status": "not_applicable", **fields}
    return Backend(id=f"be_{service_id}_{name}", service_id=service_id, name=name, created_at=NOW, **values)


def token(service_id: str | None, secret: str, kind: str = "publish", revoked: bool = False) -> ApiToken:
    return ApiToken(
        id=f"tok_{secret}", kind=kind, token_hash=token_hash(secret), prefix=secret[:10], name="t",
        account_id="acc_1", service_id=service_id, created_at=NOW, revoked_at=NOW if revoked else None,
    )  # fmt: skip


def test_fanout_services_are_read_with_port_tls_override_host_and_only_live_publish_token_hashes(
    engine: Engine,
) -> None:
    seed(
        engine,
        service("svc_live"),
        backend("svc_live", use_tls=True, override_host="app.example", settings={"port": 8443}, tls_status="verified"),
        token("svc_live", "fm_live"),
        token("svc_live", "fm_revoked", revoked=True),
        token(None, "fm_ingest", kind="ingest"),
    )

    config = DatabaseServices(read_only(engine), SECRET)()

    live = config.services["svc_live"]
    assert (live.origin, live.origin_host, live.fanout_enabled) == ("https://origin.example:8443", "app.example", True)
    assert live.publish_token_hashes == (token_hash("fm_live"),)
    assert live.grip_key == grip_key(SECRET, "svc_live")


def test_a_services_automatic_cors_option_is_read_and_off_by_default(engine: Engine) -> None:
    cors = service("svc_cors")
    cors.cross_origin = True
    seed(engine, cors, backend("svc_cors"), service("svc_plain"), backend("svc_plain"))

    config = DatabaseServices(read_only(engine), SECRET)()

    assert (config.services["svc_cors"].cross_origin, config.services["svc_plain"].cross_origin) == (True, False)


def test_delivery_services_are_left_out_and_compute_ones_with_fanout_off_are_known_as_off(engine: Engine) -> None:
    seed(engine, service("svc_cdn", "delivery"), service("svc_off", fanout=False), backend("svc_off"))

    config = DatabaseServices(read_only(engine), SECRET)()

    assert sorted(config.services) == ["svc_off"]
    assert config.services["svc_off"].fanout_enabled is False


def test_a_fanout_service_whose_backend_is_untrusted_is_not_served_and_the_reason_is_logged_once(
    engine: Engine, caplog: Any
) -> None:
    seed(engine, service("svc_bad"), backend("svc_bad", use_tls=True, tls_status="untrusted"))
    source = DatabaseServices(read_only(engine), SECRET)

    first, second = source(), source()

    assert first.services == second.services == {}
    assert [r.getMessage() for r in caplog.records] == [
        "service svc_bad: backend 'origin' has an untrusted TLS certificate: not served"
    ]
