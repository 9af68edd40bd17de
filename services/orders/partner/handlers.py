"""The consumer side of partner orders: ``WebhookReceived`` → :func:`handle_webhook`.

The handler needs the app's customer360 client, which exists only while the app runs: the
lifespan installs it (:func:`install`) and removes it at shutdown. A webhook consumed with
no client installed fails as infrastructure (retried, never dead-lettered).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.orders.partner.customers import CustomerResolver, CustomerServiceUnavailable
from services.orders.partner.service import handle_webhook
from shared.events import Envelope, WebhookReceived

__all__ = ["install", "on_webhook_received", "uninstall"]

_resolver: CustomerResolver | None = None


def install(resolver: CustomerResolver) -> None:
    global _resolver
    _resolver = resolver


def uninstall(resolver: CustomerResolver) -> None:
    global _resolver
    if _resolver is resolver:
        _resolver = None


async def on_webhook_received(session: AsyncSession, event: WebhookReceived, _: Envelope) -> None:
    if _resolver is None:
        raise CustomerServiceUnavailable("the customer360 client is not running")
    await handle_webhook(session, event, _resolver)
