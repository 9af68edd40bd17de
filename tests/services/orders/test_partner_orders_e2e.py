"""Partner orders end to end, through the real broker: signed webhooks at the gateway's
front door, out of order and replayed, become one paid order in orders, and the gateway's
delivery log shows what orders made of each."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings as GatewaySettings
from gateway.main import create_app as gateway_app
from gateway.subscriptions import subscriptions as gateway_subscriptions
from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.orders.config import Settings as OrdersSettings
from services.orders.main import create_app as orders_app
from services.orders.subscriptions import subscriptions as orders_subscriptions
from shared.messaging import ConsumerRunner
from shared.standard_webhooks import sign
from tests.support import api_client, bearer

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

WRITE = bearer("orders:read", "orders:write")


async def until(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.05)
        return value


def signed(secret: str, body: bytes) -> dict[str, str]:
    msg_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


async def test_out_of_order_and_replayed_webhooks_make_one_paid_order(make_settings, infra):
    on = {"outbox_relay_enabled": True, "kafka_fetch_max_wait_ms": 10}
    gateway = gateway_app(make_settings(GatewaySettings, **on))
    c360 = customer360_app(make_settings(Customer360Settings, **on))
    orders = orders_app(make_settings(OrdersSettings, **on, customer360_url="http://customer360"))
    orders.state.customer360_transport = httpx.ASGITransport(app=c360)
    marker = uuid.uuid4().hex[:8]
    async with AsyncExitStack() as stack:
        front = await stack.enter_async_context(api_client(gateway, rollback=False))
        await stack.enter_async_context(api_client(c360, rollback=False))
        shop = await stack.enter_async_context(api_client(orders, rollback=False))
        for name, app, subscriptions in (
            ("gateway", gateway, gateway_subscriptions),
            ("orders", orders, orders_subscriptions),
        ):
            runner = ConsumerRunner(
                group=f"{name}-partner-{marker}",
                bootstrap_servers=infra.bootstrap_servers,
                database=app.state.database,
                subscriptions=subscriptions,
                producer=app.state.runtime.producer,
                fetch_max_wait_ms=10,
                retry_backoff=0.01,
            )
            runner.start()
            stack.push_async_callback(runner.stop)

        admin = {"Authorization": f"Bearer {mint_dev_token(gateway.state.settings, role='admin')}"}
        source = await front.post(
            "/api/v1/admin/webhook-sources", json={"name": f"shop-{marker}"}, headers=admin
        )
        assert source.status_code == 201, source.text
        name, secret = source.json()["name"], source.json()["secret"]["secret"]
        sku = f"E2E-{marker}"
        made = await shop.post(
            "/products",
            json={"sku": sku, "name": "Mug", "price": "12.90", "currency": "EUR"},
            headers=WRITE,
        )
        assert made.status_code == 201

        async def post(kind: str, data: dict[str, Any]) -> str:
            body = json.dumps({"type": kind, "data": data}).encode()
            response = await front.post(
                f"/webhooks/{name}", content=body, headers=signed(secret, body)
            )
            assert response.status_code == 202, response.text
            return str(response.json()["receipt_id"])

        paid = await post("order.paid", {"id": "5001", "payment_id": "pay_9"})

        async def parked() -> bool:
            async with orders.state.database.session() as session:
                found = await session.scalar(
                    text(
                        "SELECT count(*) FROM orders.partner_event "
                        "WHERE source = :s AND status = 'parked'"
                    ),
                    {"s": name},
                )
            return found == 1

        await until(parked)  # the payment is in before its order: truly out of order
        created = await post(
            "order.created",
            {
                "id": "5001",
                "currency": "EUR",
                "customer": {"email": f"e2e.{marker}@example.com", "name": "E2E"},
                "line_items": [{"sku": sku, "quantity": 2, "price": "12.90"}],
            },
        )

        async def receipt(receipt_id: str) -> dict[str, Any]:
            response = await front.get(
                f"/api/v1/admin/webhook-receipts/{receipt_id}", headers=admin
            )
            return dict(response.json())

        async def settled(receipt_id: str, want: str):  # type: ignore[no-untyped-def]
            async def check() -> dict[str, Any] | None:
                found = await receipt(receipt_id)
                return found if found["status"] == want else None

            return await until(check)

        created_receipt = await settled(created, "processed")
        paid_receipt = await settled(paid, "processed")
        assert "paid 25.80 EUR (was parked)" in paid_receipt["status_detail"]

        replayed = await front.post(f"/api/v1/admin/webhook-receipts/{paid}/replay", headers=admin)
        assert replayed.status_code == 200
        replay_receipt = await settled(paid, "ignored")
        assert "duplicate" in replay_receipt["status_detail"]

        listed = (await shop.get("/orders?limit=200", headers=WRITE)).json()["items"]
        (order,) = [o for o in listed if o["source"] == name]
        # The gateway knows whose webhooks these were (to erase their bodies with them).
        assert created_receipt["customer_ids"] == [order["customer_id"]]
        assert paid_receipt["customer_ids"] == [order["customer_id"]]
        assert (order["status"], order["total"], order["paid_total"], len(order["payments"])) == (
            "paid",
            "25.80",
            "25.80",
            1,
        )
        async with orders.state.database.session() as session:
            rows = await session.scalar(
                text("SELECT count(*) FROM orders.partner_event WHERE source = :s"), {"s": name}
            )
        assert rows == 2
