"""Event handlers that fold other services' events into ``customer_features``.

The consumer runner calls each handler inside the transaction that also claims the event id
in the inbox, so a redelivered event never reaches a handler twice. The handlers therefore
*count* (``order_count + 1``) rather than recompute, and must not dedupe on their own: two
distinct events with equal payloads are two orders.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.features.repository import CustomerFeaturesRepository
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    Envelope,
    InteractionRecorded,
    OrderPlaced,
)


async def on_customer_created(
    session: AsyncSession, event: CustomerCreated, envelope: Envelope
) -> None:
    await CustomerFeaturesRepository(session).record_customer(event.customer_id, event.display_name)


async def on_order_placed(session: AsyncSession, event: OrderPlaced, envelope: Envelope) -> None:
    await CustomerFeaturesRepository(session).record_order(
        event.customer_id,
        total=event.total,
        currency=event.currency.upper(),
        placed_at=event.placed_at,
    )


async def on_interaction_recorded(
    session: AsyncSession, event: InteractionRecorded, envelope: Envelope
) -> None:
    await CustomerFeaturesRepository(session).record_interaction(
        event.customer_id, occurred_at=event.occurred_at
    )


async def on_customer_erased(
    session: AsyncSession, event: CustomerErased, envelope: Envelope
) -> None:
    # The row holds the display name: a privacy erase removes it with the rest. An order
    # event that arrives later starts a fresh, nameless row.
    await CustomerFeaturesRepository(session).forget(event.customer_id)


async def on_customer_merged(
    session: AsyncSession, event: CustomerMerged, envelope: Envelope
) -> None:
    """The duplicate's features are the survivor's now."""
    await CustomerFeaturesRepository(session).fold_into(event.customer_id, event.merged_id)
