"""Segmentation folds a merged customer's features into the survivor's, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.segmentation.config import Settings
from services.segmentation.main import create_app
from services.segmentation.models import CustomerFeatures
from services.segmentation.subscriptions import subscriptions
from shared.events import (
    CustomerCreated,
    CustomerMerged,
    Envelope,
    Event,
    InteractionRecorded,
    OrderPlaced,
)
from tests.support import api_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

T1, T2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)


async def deliver(app, event: Event) -> None:  # type: ignore[no-untyped-def]
    handler = subscriptions.handler_for(event.event_type)
    assert handler is not None
    async with app.state.database.session() as session:
        await handler(session, event, Envelope.wrap(event, source="/test"))


def order(customer_id: uuid.UUID, total: str, currency: str, at: datetime) -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id,
        order_id=uuid.uuid4(),
        total=Decimal(total),
        currency=currency,
        channel="online_store",
        placed_at=at,
    )


async def test_a_merge_adds_the_duplicates_counts_and_spend_to_the_survivor(make_settings):
    app = create_app(make_settings(Settings))
    survivor, duplicate, lonely, heir = (uuid.uuid4() for _ in range(4))
    async with api_client(app):
        await deliver(app, order(survivor, "10.50", "EUR", T1))
        await deliver(app, order(duplicate, "4.50", "EUR", T2))
        await deliver(app, order(duplicate, "7.00", "USD", T1))
        await deliver(
            app,
            InteractionRecorded(
                customer_id=duplicate,
                interaction_id=uuid.uuid4(),
                channel="email",
                kind="note",
                occurred_at=T2,
            ),
        )
        merged = CustomerMerged(
            customer_id=survivor, merged_id=duplicate, merged_by="agent", merged_at=T2
        )
        await deliver(app, merged)
        await deliver(app, merged)  # a redelivery changes nothing
        # a survivor segmentation has not heard of takes the duplicate's row as it is
        await deliver(app, order(lonely, "3.00", "EUR", T1))
        await deliver(
            app, CustomerMerged(customer_id=heir, merged_id=lonely, merged_by="a", merged_at=T2)
        )
        async with app.state.database.session() as session:
            kept = await session.get(CustomerFeatures, survivor)
            gone = await session.get(CustomerFeatures, duplicate)
            inherited = await session.get(CustomerFeatures, heir)
        assert gone is None
        assert kept is not None
        assert kept.order_count == 3
        assert kept.total_spent == {"EUR": "15.00", "USD": "7.00"}
        assert kept.last_order_at == T2
        assert kept.interaction_count == 1
        assert inherited is not None
        assert inherited.total_spent == {"EUR": "3.00"}


async def test_events_consumed_after_the_merge_count_for_the_survivor(make_settings):
    """The duplicate's events travel on other partitions than the merge (keyed by the
    survivor): some are consumed after it. They must not start a row under the merged id."""
    app = create_app(make_settings(Settings))
    survivor, duplicate = uuid.uuid4(), uuid.uuid4()
    async with api_client(app):
        await deliver(app, order(survivor, "10.00", "EUR", T1))
        await deliver(
            app,
            CustomerMerged(
                customer_id=survivor, merged_id=duplicate, merged_by="agent", merged_at=T2
            ),
        )
        # late: the duplicate's profile (sent before the merge) and an order of theirs
        await deliver(
            app,
            CustomerCreated(
                customer_id=duplicate, display_name="Late Duplicate", created_at=T1, tags=["x"]
            ),
        )
        await deliver(app, order(duplicate, "5.00", "EUR", T2))
        async with app.state.database.session() as session:
            kept = await session.get(CustomerFeatures, survivor)
            gone = await session.get(CustomerFeatures, duplicate)
        assert gone is None  # no row, so no name of a merged person kept
        assert kept is not None
        assert kept.order_count == 2
        assert kept.total_spent == {"EUR": "15.00"}
        assert kept.display_name is None  # the survivor's profile is not the duplicate's
