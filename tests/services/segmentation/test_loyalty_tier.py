"""``loyalty_tier`` from orders' LoyaltyTierChanged: a feature and a logged event that segment
rules can use, kept at the latest change whatever order the events arrive in, and the
membership moving with it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from services.segmentation.config import Settings
from services.segmentation.features import handlers
from services.segmentation.main import create_app
from services.segmentation.subscriptions import subscriptions
from shared.events import CustomerCreated, Envelope, Event, LoyaltyTierChanged
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

WRITE = bearer("segments:read", "segments:write")
READ = bearer("segments:read")
T0 = datetime.now(UTC) - timedelta(days=3)


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings: Any) -> FastAPI:
    return create_app(make_settings(Settings, membership_scheduler_enabled=False))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def deliver(app: FastAPI, event: Event) -> None:
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))


def changed(
    customer_id: uuid.UUID, tier: Any, previous: Any, at: datetime, direction: Any = "upgrade"
) -> LoyaltyTierChanged:
    return LoyaltyTierChanged(
        customer_id=customer_id,
        tier=tier,
        previous_tier=previous,
        direction=direction,
        rolling_points=2500,
        changed_at=at,
    )


async def entered(app: FastAPI, customer_id: uuid.UUID, segment_id: str) -> list[str]:
    async with app.state.database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT headers, payload FROM segmentation.outbox WHERE key = :key "
                    "AND topic = 'rapport.segment.v1' ORDER BY id"
                ),
                {"key": str(customer_id)},
            )
        ).all()
    return [
        dict(h)["ce_type"].split(".")[2]
        for h, p in rows
        if json.loads(p)["segment_id"] == segment_id
    ]


async def test_subscribes() -> None:
    assert subscriptions.handlers(LoyaltyTierChanged.event_type) == (
        handlers.on_loyalty_tier_changed,
    )


async def test_a_gold_segment_follows_the_tier(app: FastAPI, client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    gold = uuid.uuid4()
    await deliver(
        app, CustomerCreated(customer_id=gold, display_name="Ada", tags=[tag], created_at=T0)
    )
    await deliver(app, changed(gold, "gold", "silver", T0))
    created = await client.post(
        "/segments",
        json={
            "name": "Gold",
            "rule": {
                "all": [
                    {"field": "tags", "op": "contains", "value": tag},
                    {"field": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                ]
            },
        },
        headers=WRITE,
    )
    assert created.status_code == 201, created.text
    segment = created.json()
    assert segment["recomputed"][0]["entered"] == 1
    features = (await client.get(f"/customers/{gold}/features", headers=READ)).json()
    assert (features["loyalty_tier"], features["loyalty_tier_at"]) == (
        "gold",
        T0.isoformat().replace("+00:00", "Z"),
    )

    # an older change arriving late changes nothing
    await deliver(app, changed(gold, "silver", None, T0 - timedelta(days=1)))
    features = (await client.get(f"/customers/{gold}/features", headers=READ)).json()
    assert features["loyalty_tier"] == "gold"

    # the downgrade takes the customer out of the segment at once
    await deliver(app, changed(gold, "silver", "gold", T0 + timedelta(days=1), "downgrade"))
    assert await entered(app, gold, segment["id"]) == ["entered", "exited"]


async def test_tier_changes_are_events_a_rule_can_count(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    customer_id, tag = uuid.uuid4(), uuid.uuid4().hex
    await deliver(
        app, CustomerCreated(customer_id=customer_id, display_name="B", tags=[tag], created_at=T0)
    )
    await deliver(app, changed(customer_id, "silver", None, T0))
    preview = await client.post(
        "/segments:preview",
        json={
            "rule": {
                "all": [
                    {
                        "performed": "loyalty_tier_changed",
                        "where": [{"field": "direction", "op": "eq", "value": "upgrade"}],
                        "at_least": 1,
                        "within_days": 7,
                    },
                    {"field": "loyalty_tier", "op": "eq", "value": "silver"},
                    {"field": "tags", "op": "contains", "value": tag},
                ]
            }
        },
        headers=READ,
    )
    assert preview.status_code == 200, preview.text
    assert preview.json() == {"count": 1, "sample": [str(customer_id)]}
