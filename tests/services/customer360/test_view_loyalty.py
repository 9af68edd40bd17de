"""The 360 view follows orders' loyalty tier: current tier on the aggregates, a timeline
entry per change, and a late (older) change never overwrites a newer one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from services.customer360.config import Settings
from services.customer360.main import create_app
from services.customer360.subscriptions import subscriptions
from services.customer360.view import handlers
from shared.events import Envelope, LoyaltyTierChanged
from tests.support import api_client, bearer

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
READ = bearer("customers:read")
PII = bearer("customers:read", "customers:write", "customers:pii")


@pytest_asyncio.fixture(loop_scope="session")
async def app(make_settings):
    return create_app(make_settings(Settings))


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    async with api_client(app) as c:
        yield c


async def deliver(app, event: LoyaltyTierChanged) -> None:
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))


def changed(customer_id, tier, previous, at, direction="upgrade") -> LoyaltyTierChanged:
    return LoyaltyTierChanged(
        customer_id=customer_id,
        tier=tier,
        previous_tier=previous,
        direction=direction,
        rolling_points=1200,
        changed_at=at,
    )


async def test_subscribes_to_tier_changes():
    assert subscriptions.handlers(LoyaltyTierChanged.event_type) == (
        handlers.on_loyalty_tier_changed,
    )


async def test_tier_changes_show_on_the_360_view_and_timeline(app, client):
    response = await client.post(
        "/customers",
        json={"display_name": "Ada", "emails": [f"{uuid.uuid4().hex[:10]}@ex.com"]},
        headers=PII,
    )
    assert response.status_code == 201, response.text
    customer_id = uuid.UUID(response.json()["id"])
    await deliver(app, changed(customer_id, "silver", None, T0))
    await deliver(app, changed(customer_id, "gold", "silver", T0 + timedelta(days=2)))
    # an older change delivered late: a timeline entry, but the current tier stays gold
    await deliver(
        app, changed(customer_id, None, "silver", T0 + timedelta(days=1), direction="downgrade")
    )
    response = await client.get(f"/customers/{customer_id}/360", headers=READ)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["aggregates"]["loyalty_tier"] == "gold"
    assert got["aggregates"]["loyalty_tier_at"] == "2026-11-03T12:00:00Z"
    assert [(i["kind"], i["title"]) for i in got["timeline"]] == [
        ("loyalty.upgrade", "Loyalty tier: Gold (was Silver)"),
        ("loyalty.downgrade", "Loyalty tier: none (was Silver)"),
        ("loyalty.upgrade", "Loyalty tier: Silver"),
    ]
