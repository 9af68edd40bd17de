"""The gateway consumes what services report about webhooks, for the delivery log."""

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.service import record_outcome
from shared.events import Envelope, WebhookProcessed


async def on_webhook_processed(
    session: AsyncSession, event: WebhookProcessed, envelope: Envelope
) -> None:
    await record_outcome(session, event)
