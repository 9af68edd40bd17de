"""What tickets and surveys do when a customer is merged or erased."""

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import SurveyResponse, Ticket, TicketComment
from shared.events import CustomerErased, CustomerMerged, Envelope

ERASED = "[erased]"


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    """The duplicate's tickets and survey answers are the survivor's now."""
    for model in (Ticket, SurveyResponse):
        await session.execute(
            update(model)
            .where(model.customer_id == event.merged_id)
            .values(customer_id=event.customer_id)
        )


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    """Keep that tickets and answers existed (SLA figures, CSAT/NPS stay right), drop every
    word the customer or an agent wrote about them."""
    tickets = select(Ticket.id).where(Ticket.customer_id == event.customer_id)
    await session.execute(
        update(Ticket)
        .where(Ticket.customer_id == event.customer_id)
        .values(title=ERASED, description=None)
    )
    await session.execute(
        update(TicketComment).where(TicketComment.ticket_id.in_(tickets)).values(body=ERASED)
    )
    await session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.customer_id == event.customer_id)
        .values(comment=None)
    )
