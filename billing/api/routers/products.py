"""Account products: Compute and Fanout, purchased or cancelled by the account's superuser."""

from __future__ import annotations

from fastapi import APIRouter, status

from billing import accounts, products
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.schemas_services import ProductId, ProductOut
from billing.domain.fanout_rules import PRODUCTS
from billing.domain.roles import Action

router = APIRouter(prefix="/v1", tags=["products"])


@router.get("/accounts/{account_id}/products", response_model=list[ProductOut])
def list_products(account_id: str, session: SessionDep, caller: CallerDep) -> list[ProductOut]:
    """Compute and Fanout for the account: purchased (`enabled`) or not."""
    require(caller, Action.READ_ACCOUNT, account_id)
    accounts.get_account(session, account_id)
    return [
        ProductOut.model_validate(
            products.product_json(account_id, product, products.product_row(session, account_id, product))
        )
        for product in PRODUCTS
    ]


@router.put("/accounts/{account_id}/products/{product}", response_model=ProductOut)
def purchase_product(
    account_id: str, product: ProductId, session: SessionDep, caller: CallerDep, now: NowDep
) -> ProductOut:
    """Purchase a product for the account (the account's superuser). Fanout needs a paid account and Compute."""
    products.require_purchaser(caller, account_id)
    row = products.purchase(session, caller, account_id, product, now)
    return ProductOut.model_validate(products.product_json(account_id, product, row))


@router.delete("/accounts/{account_id}/products/{product}", status_code=status.HTTP_204_NO_CONTENT)
def cancel_product(account_id: str, product: ProductId, session: SessionDep, caller: CallerDep, now: NowDep) -> None:
    """Cancel a product (the account's superuser). Cancelling Fanout turns it off on every service;
    Compute cannot be cancelled while Fanout is purchased."""
    products.require_purchaser(caller, account_id)
    products.cancel(session, caller, account_id, product, now)
