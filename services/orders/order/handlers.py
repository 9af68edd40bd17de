"""What orders does when a customer is merged or erased."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Order
from shared.events import CustomerErased, CustomerMerged, Envelope


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's orders are the survivor's now."""
    await session.execute(
        update(Order)
        .where(Order.customer_id == event.merged_id)
        .values(customer_id=event.customer_id)
    )


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Personal data on the orders goes; amounts, items and dates stay (accounting needs
    them, and they no longer identify anyone once the profile is erased)."""
    await session.execute(
        update(Order)
        .where(Order.customer_id == event.customer_id)
        .values(shipping_address=None, note=None)
    )
