"""What the pipeline does when a customer is merged or erased."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.models import Deal
from shared.events import CustomerErased, CustomerMerged, Envelope

#: What an erased customer's deals are called from then on.
ERASED_TITLE = "(erased)"


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's deals are the survivor's now."""
    await session.execute(
        update(Deal)
        .where(Deal.customer_id == event.merged_id)
        .values(customer_id=event.customer_id)
    )


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Free text that may name the person goes (title, lost reason); amounts, stages, owners
    and dates stay — the pipeline's figures and the reps' results must still add up."""
    await session.execute(
        update(Deal)
        .where(Deal.customer_id == event.customer_id)
        .values(title=ERASED_TITLE, lost_reason=None, version=Deal.version + 1)
    )
