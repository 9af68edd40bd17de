"""What tasks do when a customer is merged or erased."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Task
from shared.events import CustomerErased, CustomerMerged, Envelope

ERASED = "[erased]"


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's tasks are the survivor's now."""
    await session.execute(
        update(Task)
        .where(Task.customer_id == event.merged_id)
        .values(customer_id=event.customer_id)
    )


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Keep that tasks existed (workload figures stay right) but drop their words; open ones
    are cancelled, since there is no one left to follow up with."""
    await session.execute(
        update(Task)
        .where(Task.customer_id == event.customer_id, Task.status == "open")
        .values(status="cancelled", cancelled_at=event.erased_at)
    )
    await session.execute(
        update(Task)
        .where(Task.customer_id == event.customer_id)
        .values(title=ERASED, notes=None, version=Task.version + 1)
    )
