"""End to end through the real broker: an order in orders' outbox → Kafka → segmentation's
consumer scores the customer → ``CustomerScored`` through segmentation's outbox → Kafka →
customer360's 360 view shows the scores (the contract between the two parts)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.customer360.config import Settings as Customer360Settings
from services.customer360.main import create_app as customer360_app
from services.customer360.subscriptions import subscriptions as customer360_subscriptions
from services.orders.config import Settings as OrdersSettings
from services.orders.main import create_app as orders_app
from services.segmentation.config import Settings as SegmentationSettings
from services.segmentation.main import create_app as segmentation_app
from services.segmentation.subscriptions import subscriptions as segmentation_subscriptions
from shared.events import OrderPlaced, OrderStatusChanged
from shared.messaging import ConsumerRunner, publish
from tests.support import api_client, bearer, running

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

C360 = bearer("customers:read", "customers:write", "customers:pii")


async def _until(check: Callable[[], Awaitable[Any]], timeout: float) -> tuple[Any, float]:
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value, time.perf_counter() - started
            await asyncio.sleep(0.02)


async def test_a_paid_order_reaches_the_360_view_as_scores(make_settings: Any, infra: Any) -> None:
    relay = {"outbox_relay_enabled": True, "kafka_fetch_max_wait_ms": 10}
    c360 = customer360_app(make_settings(Customer360Settings, **relay))
    segmentation = segmentation_app(
        make_settings(SegmentationSettings, analytics_scheduler_enabled=False, **relay)
    )
    orders = orders_app(make_settings(OrdersSettings, **relay))
    async with (
        api_client(c360, rollback=False) as c360_client,
        running(segmentation),
        running(orders),
    ):
        runners = [
            ConsumerRunner(
                group=f"{name}-e2e-{uuid.uuid4().hex[:8]}",  # own groups: no stale offsets
                bootstrap_servers=infra.bootstrap_servers,
                database=app.state.database,
                subscriptions=subs,
                producer=app.state.runtime.producer,
                fetch_max_wait_ms=10,
                retry_backoff=0.01,
            )
            for name, app, subs in (
                ("customer360", c360, customer360_subscriptions),
                ("segmentation", segmentation, segmentation_subscriptions),
            )
        ]
        for runner in runners:
            runner.start()
        try:
            response = await c360_client.post(
                "/customers", json={"display_name": "Mary Jackson"}, headers=C360
            )
            assert response.status_code == 201, response.text
            customer_id = uuid.UUID(response.json()["id"])
            order_id = uuid.uuid4()
            placed_at = datetime.now(UTC) - timedelta(days=10)
            async with orders.state.database.session() as session:
                await publish(
                    session,
                    OrderPlaced(
                        customer_id=customer_id,
                        order_id=order_id,
                        total=Decimal("40.00"),
                        currency="EUR",
                        channel="online_store",
                        placed_at=placed_at,
                    ),
                    OrderStatusChanged(
                        customer_id=customer_id,
                        order_id=order_id,
                        status="paid",
                        previous_status="pending",
                        changed_at=placed_at,
                        total=Decimal("40.00"),
                        paid_total=Decimal("40.00"),
                        refunded_total=Decimal(0),
                        currency="EUR",
                    ),
                )
            committed = time.perf_counter()

            async def scored() -> dict[str, Any] | None:
                got = await c360_client.get(f"/customers/{customer_id}/360", headers=C360)
                assert got.status_code == 200, got.text
                aggregates: dict[str, Any] = got.json()["aggregates"]
                # the paid state, not the intermediate pending one
                return aggregates if aggregates.get("clv") == "526.67" else None

            # joining two consumer groups takes seconds on the first run
            aggregates, _ = await _until(scored, timeout=90.0)
            print(
                f"\norder commit → scores in the 360 view: {time.perf_counter() - committed:.2f}s"
            )
            # one paid order of 40 EUR ten days ago: first_time; I = 90 d (single order),
            # x = 10 / 90 → churn 0; CLV = 40 + 40 * 365 / 90 * 3 = 40 + 486.67 = 526.67
            assert aggregates["lifecycle_stage"] == "first_time"
            assert aggregates["churn_risk"] == 0.0
            assert aggregates["clv_currency"] == "EUR"
            assert aggregates["frequency"] in {1, 2, 3, 4, 5}
            assert aggregates["rfm_segment"] is not None
        finally:
            for runner in runners:
                await runner.stop()
