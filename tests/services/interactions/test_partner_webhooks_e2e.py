"""End to end through the real broker: a signed partner webhook at the gateway → Kafka →
interactions (customer found through customer360) → stored interactions, and the
WebhookProcessed status back → Kafka → the gateway's delivery log. A replay stores nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text

from gateway.auth.dev import mint_dev_token
from gateway.config import Settings as GatewaySettings
from gateway.main import create_app as gateway_app
from gateway.subscriptions import subscriptions as gateway_subscriptions
from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.interactions.config import Settings as InteractionsSettings
from services.interactions.main import create_app as interactions_app
from services.interactions.subscriptions import subscriptions as interactions_subscriptions
from shared.messaging import ConsumerRunner
from shared.standard_webhooks import sign
from tests.support import api_client, bearer

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)


async def test_a_partner_webhook_becomes_interactions_and_a_replay_stores_nothing(
    make_settings: Any, infra: Any
) -> None:
    marker = uuid.uuid4().hex[:8]
    source = f"mail-{marker}"
    on = {"outbox_relay_enabled": True, "kafka_fetch_max_wait_ms": 10}
    c360 = customer360_app(make_settings(Customer360Settings))
    interactions = interactions_app(
        make_settings(
            InteractionsSettings,
            **on,
            customer360_url="http://customer360",
            webhook_formats={source: "email-events"},
        )
    )
    interactions.state.customer_resolver.mounts = {
        "http://customer360": httpx.ASGITransport(app=c360)
    }
    gateway_settings = make_settings(GatewaySettings, **on)
    gateway = gateway_app(gateway_settings)
    admin = {"Authorization": f"Bearer {mint_dev_token(gateway_settings, role='admin')}"}
    async with AsyncExitStack() as stack:
        c360_client = await stack.enter_async_context(api_client(c360, rollback=False))
        interactions_client = await stack.enter_async_context(
            api_client(interactions, rollback=False)
        )
        gateway_client = await stack.enter_async_context(api_client(gateway, rollback=False))
        for name, app, subscriptions in (
            ("interactions", interactions, interactions_subscriptions),
            ("gateway", gateway, gateway_subscriptions),
        ):
            runner = ConsumerRunner(
                group=f"{name}-webhooks-{marker}",
                bootstrap_servers=infra.bootstrap_servers,
                database=app.state.database,
                subscriptions=subscriptions,
                producer=app.state.runtime.producer,
                fetch_max_wait_ms=10,
                retry_backoff=0.01,
            )
            runner.start()
            stack.push_async_callback(runner.stop)

        created = await gateway_client.post(
            "/api/v1/admin/webhook-sources", json={"name": source}, headers=admin
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]["secret"]
        email = f"wei.{marker}@example.com"
        customer = await c360_client.post(
            "/customers",
            json={"display_name": "Wei Zhang", "emails": [email]},
            headers=bearer("customers:read", "customers:write"),
        )
        assert customer.status_code == 201, customer.text
        customer_id = customer.json()["id"]

        now = int(time.time())
        body = json.dumps(
            [
                {"event": "delivered", "email": email, "timestamp": now - 60, "sg_event_id": "d1"},
                {"event": "open", "email": email, "timestamp": now - 30, "sg_event_id": "o1"},
                {"event": "deferred", "email": email, "timestamp": now - 50, "sg_event_id": "x"},
            ]
        ).encode()
        webhook_id = f"msg_{marker}"
        received = await gateway_client.post(
            f"/webhooks/{source}",
            content=body,
            headers={
                "webhook-id": webhook_id,
                "webhook-timestamp": str(now),
                "webhook-signature": sign(secret, webhook_id, now, body),
                "content-type": "application/json",
            },
        )
        assert received.status_code == 202, received.text
        receipt_url = f"/api/v1/admin/webhook-receipts/{received.json()['receipt_id']}"

        async def stored() -> list[dict[str, Any]] | None:
            page = await interactions_client.get(
                "/interactions",
                params={"customer_id": customer_id, "source": source},
                headers=bearer("interactions:read"),
            )
            items: list[dict[str, Any]] = page.json()["items"]
            return items if len(items) >= 2 else None

        async def receipt_detail(prefix: str) -> dict[str, Any] | None:
            got: dict[str, Any] = (await gateway_client.get(receipt_url, headers=admin)).json()
            detail = got.get("status_detail") or ""
            return got if detail.startswith(f"interactions: {prefix}") else None

        # Joining the consumer groups takes seconds on the first message.
        items = await until(stored, timeout=90.0)
        assert [(i["kind"], i["event_id"]) for i in items] == [
            ("email_delivered", "d1"),
            ("email_opened", "o1"),
        ]
        first = await until(lambda: receipt_detail("2 stored, 0 duplicate, 1 ignored"), 30.0)
        assert first["status"] == "processed"
        assert first["customer_ids"] == [customer_id]  # erased with the customer, if ever

        replayed = await gateway_client.post(f"{receipt_url}/replay", headers=admin)
        assert replayed.status_code == 200, replayed.text
        again = await until(lambda: receipt_detail("0 stored, 2 duplicate, 1 ignored"), 30.0)
        assert again["status"] == "processed"
        assert again["replays"] == 1
        assert len(await stored() or []) == 2

        # committed rows: leave the shared database's interactions as they were
        async with interactions.state.database.session() as session:
            await session.execute(
                text("DELETE FROM interactions.interaction WHERE source = :s"), {"s": source}
            )
