"""``WebhookReceived`` → interactions, and the ``WebhookProcessed`` status back.

For a source listed in ``webhook_formats`` (others belong to other services: no status is
sent for them, so this service never overwrites theirs):

1. read the body in the source's format (:mod:`.partners`); unreadable → ``failed``;
2. find each event's customer by e-mail/phone through customer360 (:mod:`.customers`);
   unknown people are ignored or become prospects, per format;
3. validate each event like an API item and store the valid ones in one statement under
   the webhook's source, keyed by the partner's event id — so a redelivered or replayed
   webhook stores nothing new (its events come back as duplicates);
4. publish ``WebhookProcessed`` in the same transaction: ``processed`` when at least one
   event maps to an interaction (stored now or before), ``ignored`` when none does (events
   not mapped, unknown recipients, anonymous visitors), ``failed`` when the body is
   unreadable, every mapped event is invalid, or customer360 stays unreachable (nothing is
   stored then; replay the webhook from the gateway's delivery log once it is back).

The consumer's inbox makes a redelivered *event* a no-op; the partner event ids make a
replayed *webhook* (a new event) a no-op too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.campaign.repository import apply_email_events
from services.interactions.interaction import service
from services.interactions.interaction.customers import current_resolver
from services.interactions.interaction.partners import (
    Format,
    PayloadError,
    campaign_email_events,
    map_webhook,
)
from services.interactions.interaction.schemas import InteractionCreate
from shared.events import Envelope, WebhookProcessed, WebhookReceived, webhook_key
from shared.messaging import publish

__all__ = ["on_webhook_received", "use_formats"]

logger = logging.getLogger(__name__)

#: Source → format; set by the app factory from its settings.
_formats: dict[str, Format] = {}


def use_formats(formats: dict[str, Format]) -> None:
    """The source → format table (the app factory passes its settings')."""
    _formats.clear()
    _formats.update(formats)


async def _report(
    session: AsyncSession,
    event: WebhookReceived,
    status: Literal["processed", "ignored", "failed"],
    detail: str,
    customer_ids: list[UUID] | None = None,
) -> None:
    await publish(
        session,
        WebhookProcessed(
            customer_id=webhook_key(event.source, event.webhook_id),
            source=event.source,
            webhook_id=event.webhook_id,
            status=status,
            detail=detail[:1000],
            processed_by="interactions",
            processed_at=datetime.now(UTC),
            # Whom it was about: the gateway erases the stored body with any of them.
            resolved_customer_ids=customer_ids or [],
        ),
    )


async def on_webhook_received(
    session: AsyncSession, event: WebhookReceived, envelope: Envelope
) -> None:
    fmt = _formats.get(event.source)
    if fmt is None:
        return
    try:
        mapping = map_webhook(event, fmt)
    except PayloadError as exc:
        await _report(session, event, "failed", f"unreadable {fmt} payload: {exc}")
        return
    resolver = current_resolver()
    customers: dict[tuple[tuple[str, str], ...], UUID | None] = {}
    items: dict[int, InteractionCreate] = {}
    ignored, invalid = list(mapping.ignored), []
    for position, mapped in enumerate(mapping.mapped):
        key = tuple(sorted(mapped.identity.items()))
        if key not in customers:
            # customer360 down: ResolverUnavailable rolls the whole webhook back, and the
            # consumer tries again until it answers (never dead-lettered, nothing lost)
            customers[key] = await resolver.resolve(
                mapped.identity, create=mapped.create, display_name=mapped.display_name
            )
        customer_id = customers[key]
        if customer_id is None:
            ignored.append(f"{mapped.item.get('event_id')}: no such customer")
            continue
        try:
            items[position] = InteractionCreate.model_validate(
                {**mapped.item, "customer_id": customer_id}
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = "/".join(str(step) for step in first["loc"])
            invalid.append(f"{mapped.item.get('event_id')}: {where}: {first['msg']}")
    stored = await service.store(session, event.source, items)
    if fmt == "email-events":
        # Delivered / bounced / opened / clicked of our own campaign e-mail: the message's
        # status too (its interactions are the ones just stored).
        await apply_email_events(session, campaign_email_events(event))
    created = sum(1 for s in stored.values() if s.created)
    detail = (
        f"{created} stored, {len(stored) - created} duplicate, {len(ignored)} ignored, "
        f"{len(invalid)} invalid"
    )
    notes = "; ".join((invalid + ignored)[:5])
    if notes:
        detail += f" ({notes})"
    if invalid:
        logger.warning("webhook %s/%s: %s", event.source, event.webhook_id, detail)
    status: Literal["processed", "ignored", "failed"] = (
        "processed" if stored else "failed" if invalid else "ignored"
    )
    await _report(
        session, event, status, detail, sorted({c for c in customers.values() if c is not None})
    )
