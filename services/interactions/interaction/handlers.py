"""What interactions does when a customer is merged or erased."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Interaction
from shared.events import CustomerErased, CustomerMerged, Envelope


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's touchpoints are the survivor's now."""
    await session.execute(
        update(Interaction)
        .where(Interaction.customer_id == event.merged_id)
        .values(customer_id=event.customer_id)
    )


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Keep that a touchpoint happened (channel, kind, time, agent: counts stay right), drop
    what was said in it and its details (addresses, numbers, URLs, search terms)."""
    await session.execute(
        update(Interaction)
        .where(Interaction.customer_id == event.customer_id)
        .values(summary=None, subject=None, details={})
    )
