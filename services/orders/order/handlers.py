"""What orders does when a customer is merged or erased."""

from sqlalchemy import delete, null, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Order
from services.orders.models.base import Base
from services.orders.recommendation.repository import merge_customers
from shared.events import CustomerErased, CustomerMerged, Envelope


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's orders are the survivor's now, and so is its purchase history in
    the recommender (counted once, as one customer)."""
    await session.execute(
        update(Order)
        .where(Order.customer_id == event.merged_id)
        .values(customer_id=event.customer_id)
    )
    await merge_customers(session, event.merged_id, event.customer_id)


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Personal data on the orders goes; amounts, items and dates stay (accounting needs
    them, and they no longer identify anyone once the profile is erased)."""
    await session.execute(
        update(Order)
        .where(Order.customer_id == event.customer_id)
        .values(shipping_address=null(), note=None)  # SQL NULL, not a JSON null
    )
    # Stored Idempotency-Key replies of this customer's orders hold the address too.
    replies = Base.metadata.tables["orders.idempotency_key"]
    await session.execute(
        delete(replies).where(replies.c.response["customer_id"].astext == str(event.customer_id))
    )
