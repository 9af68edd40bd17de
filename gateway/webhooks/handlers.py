"""The gateway consumes what services report about webhooks, for the delivery log."""

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.service import erase_customer, record_outcome
from shared.events import CustomerErased, Envelope, WebhookProcessed


async def on_webhook_processed(
    session: AsyncSession, event: WebhookProcessed, envelope: Envelope
) -> None:
    await record_outcome(session, event)


async def on_customer_erased(
    session: AsyncSession, event: CustomerErased, envelope: Envelope
) -> None:
    await erase_customer(session, event.customer_id)
