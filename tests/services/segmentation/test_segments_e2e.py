"""End to end through the real broker: an order committed in orders' outbox → Kafka →
segmentation's consumer → membership → segmentation's outbox → Kafka: the customer enters a
segment within a second of the order that qualifies them, and leaves it when a later event
disqualifies them."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.orders.config import Settings as OrdersSettings
from services.orders.main import create_app as orders_app
from services.segmentation.config import Settings
from services.segmentation.main import create_app
from services.segmentation.subscriptions import subscriptions
from shared.events import SEGMENT_TOPIC, OrderPlaced, OrderStatusChanged
from shared.messaging import ConsumerRunner, publish
from tests.shared.kafka_tail import Tail, tail
from tests.support import api_client, bearer, running

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio(loop_scope="session")]

WRITE = bearer("segments:read", "segments:write")

#: A big order in the last 30 days that was not cancelled since.
RULE = {
    "all": [
        {
            "performed": "order_placed",
            "where": [{"field": "total", "op": "gte", "value": "100"}],
            "at_least": 1,
            "within_days": 30,
        },
        {
            "not": {
                "performed": "order_status_changed",
                "where": [{"field": "status", "op": "eq", "value": "cancelled"}],
                "at_least": 1,
                "within_days": 30,
            }
        },
    ]
}


def _placed(customer_id: uuid.UUID, total: str) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=uuid.uuid4(),
        total=Decimal(total),
        currency="EUR",
        channel="web",
        placed_at=datetime.now(UTC),
    )


async def _membership(
    feed: Tail, customer_id: uuid.UUID, segment_id: str, count: int, timeout: float
) -> list[tuple[str, dict[str, object]]]:
    """The customer's first ``count`` entries/exits of the segment (their CustomerScored
    events share the topic and are skipped)."""

    def found() -> list[tuple[str, dict[str, object]]]:
        out = []
        for r in feed.of(str(customer_id)):
            kind = dict(r.headers)["ce_type"].decode().split(".")[2]
            data = json.loads(r.value)
            if kind in ("entered", "exited") and data["segment_id"] == segment_id:
                out.append((kind, data))
        return out

    await feed.wait_until(lambda: len(found()) >= count, timeout=timeout)
    return found()


async def test_a_customer_enters_after_a_qualifying_order_and_leaves_when_it_is_cancelled(
    make_settings, infra
):  # type: ignore[no-untyped-def]
    relay = {"outbox_relay_enabled": True, "kafka_fetch_max_wait_ms": 10}
    segmentation = create_app(make_settings(Settings, membership_scheduler_enabled=False, **relay))
    orders = orders_app(make_settings(OrdersSettings, **relay))
    async with (
        api_client(segmentation, rollback=False) as client,
        running(orders),
        tail(infra.bootstrap_servers, SEGMENT_TOPIC) as feed,
    ):
        runner = ConsumerRunner(
            group=f"segmentation-e2e-{uuid.uuid4().hex[:8]}",
            bootstrap_servers=infra.bootstrap_servers,
            database=segmentation.state.database,
            subscriptions=subscriptions,
            producer=segmentation.state.runtime.producer,
            fetch_max_wait_ms=10,
            retry_backoff=0.01,
        )
        runner.start()
        created = await client.post(
            "/segments", json={"name": "Big recent order", "rule": RULE}, headers=WRITE
        )
        assert created.status_code == 201, created.text
        segment_id = created.json()["id"]

        async def order(customer_id: uuid.UUID, total: str) -> float:
            async with orders.state.database.session() as session:
                await publish(session, _placed(customer_id, total))
            return time.perf_counter()

        try:
            # Warm-up: joining the consumer group takes seconds; the first qualifying
            # customer's entry says the whole pipeline is up.
            first = uuid.uuid4()
            await order(first, "150.00")
            entered = await _membership(feed, first, segment_id, 1, timeout=90.0)
            assert [k for k, _ in entered] == ["entered"]
            assert entered[0][1]["segment_version"] == 1

            # Qualifying order → SegmentEntered on the broker, within a second (warm).
            delays = []
            qualified = []
            for _ in range(10):
                customer_id = uuid.uuid4()
                qualified.append(str(customer_id))
                await order(customer_id, "20.00")  # not enough: no event
                committed = await order(customer_id, "120.00")
                got = await _membership(feed, customer_id, segment_id, 1, timeout=30.0)
                delays.append(time.perf_counter() - committed)
                assert [k for k, _ in got] == ["entered"]
            print(
                f"\norder committed → SegmentEntered on the broker: p50 "
                f"{statistics.median(delays) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms"
            )
            assert statistics.median(delays) < 1.0

            # No longer qualifying: the order is cancelled → SegmentExited.
            async with orders.state.database.session() as session:
                await publish(
                    session,
                    OrderStatusChanged(
                        customer_id=first,
                        order_id=uuid.uuid4(),
                        status="cancelled",
                        previous_status="placed",
                        changed_at=datetime.now(UTC),
                    ),
                )
            left = await _membership(feed, first, segment_id, 2, timeout=30.0)
            assert [k for k, _ in left] == ["entered", "exited"]
            members = await client.get(f"/segments/{segment_id}/members?limit=200", headers=WRITE)
            ids = {m["customer_id"] for m in members.json()["items"]}
            assert str(first) not in ids
            assert set(qualified) <= ids
        finally:
            await runner.stop()
            await client.delete(f"/segments/{segment_id}", headers=WRITE)
            await asyncio.sleep(0)
