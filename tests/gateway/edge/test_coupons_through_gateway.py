"""Coupons and loyalty through the gateway to the running orders service: routed, scoped,
and problems passed through as problem+json."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from tests.gateway.edge.conftest import Gateway, gateway_settings, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def full(
    make_settings: Callable[..., Any], services: dict[str, str]
) -> AsyncIterator[Gateway]:
    """The whole stack, with an upstream timeout a loaded 2-core machine can meet (placing an
    order is several statements; the edge tests' 0.5 s is for the proxy's own behaviour)."""
    settings = gateway_settings(make_settings, **services)
    settings = settings.model_copy(update={"upstream_timeout_s": 15.0})
    async with running_gateway(settings) as gateway:
        yield gateway


async def test_a_coupon_redeems_once_through_the_gateway(full: Gateway) -> None:
    admin = full.auth("admin")
    product = await full.client.post(
        "/api/v1/products",
        json={
            "sku": f"GW-{uuid.uuid4().hex[:8]}",
            "name": "Tea",
            "price": "12.00",
            "currency": "EUR",
        },
        headers=admin,
    )
    assert product.status_code == 201, product.text
    code = f"GW-{uuid.uuid4().hex[:10].upper()}"
    promo = await full.client.post(
        "/api/v1/promotions",
        json={
            "name": "Gateway",
            "kind": "percentage",
            "value": "25",
            "currency": "EUR",
            "code": code,
            "total_limit": 1,
        },
        headers=admin,
    )
    assert promo.status_code == 201, promo.text
    denied = await full.client.post(
        "/api/v1/promotions",
        json={"name": "x", "kind": "fixed", "value": "1.00", "currency": "EUR"},
        headers=full.auth("marketing"),
    )
    assert denied.status_code == 403

    customer = str(uuid.uuid4())
    body = {
        "customer_id": customer,
        "currency": "EUR",
        "channel": "online_store",
        "lines": [{"product_id": product.json()["id"], "quantity": 2}],
        "coupon_codes": [code],
    }
    placed = await full.client.post("/api/v1/orders", json=body, headers=admin)
    assert placed.status_code == 201, placed.text
    assert (placed.json()["discount_total"], placed.json()["total"]) == ("6.00", "18.00")
    again = await full.client.post("/api/v1/orders", json=body, headers=admin)
    assert again.status_code == 422
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"] == "/problems/coupon-exhausted"

    loyalty = await full.client.get(
        f"/api/v1/customers/{customer}/loyalty", headers=full.auth("marketing")
    )
    assert loyalty.status_code == 200, loyalty.text
    assert (loyalty.json()["balance"], loyalty.json()["tier"]) == (0, None)  # not paid yet
