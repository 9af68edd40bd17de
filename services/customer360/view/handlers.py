"""Event handlers that build the 360 view: aggregates and timeline, one event at a time.

The consumer runner calls each handler in the transaction that also claims the event id in
the inbox, so a redelivered event never reaches a handler twice. On top of that, orders and
tickets are keyed by their own id (a second ``OrderPlaced`` for one order does not count it
twice) and the timeline by the event id.

Events about a customer id customer360 does not know are stored all the same (the view is
keyed by customer id, not by profile). Events about a merged-away customer go to its
survivor; events about an erased customer are dropped, so nothing personal comes back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.view.repository import ViewRepository
from shared.events import (
    BehaviourRecorded,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerScored,
    CustomerUpdated,
    Envelope,
    InteractionRecorded,
    LoyaltyTierChanged,
    OrderPlaced,
    OrderStatusChanged,
    SegmentEntered,
    SegmentExited,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)

__all__ = [
    "on_behaviour_recorded",
    "on_consent_changed",
    "on_customer_created",
    "on_customer_erased",
    "on_customer_merged",
    "on_customer_scored",
    "on_customer_updated",
    "on_interaction_recorded",
    "on_loyalty_tier_changed",
    "on_order_placed",
    "on_order_status_changed",
    "on_segment_entered",
    "on_segment_exited",
    "on_survey_answered",
    "on_ticket_opened",
    "on_ticket_status_changed",
]

_CHANNEL_NAMES = {"email": "E-mail", "sms": "SMS", "phone": "Phone"}


def _label(word: str) -> str:
    return word.replace("_", " ").strip().capitalize()


def _slug(word: str) -> str:
    """A timeline kind segment: lower case, ``[a-z0-9_]``."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in word.strip().lower())
    return cleaned[:60] or "other"


async def _target(repo: ViewRepository, event: Any) -> Any:
    return await repo.resolve(event.customer_id)


# --- orders ---------------------------------------------------------------------------------
async def on_order_placed(session: AsyncSession, event: OrderPlaced, envelope: Envelope) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    currency = event.currency.upper()
    total = format(event.total, "f")  # never "1E+2"
    await repo.order_placed(
        customer_id,
        order_id=event.order_id,
        total=event.total,
        currency=currency,
        placed_at=event.placed_at,
    )
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.placed_at,
        kind="order.placed",
        title=f"Order placed: {total} {currency}",
        reference_id=event.order_id,
        data={"total": total, "currency": currency, "channel": event.channel},
    )


async def on_order_status_changed(
    session: AsyncSession, event: OrderStatusChanged, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.order_status_changed(
        customer_id, order_id=event.order_id, status=event.status, changed_at=event.changed_at
    )
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.changed_at,
        kind="order.status_changed",
        title=f"Order {_label(event.status).lower()}",
        reference_id=event.order_id,
        data={"status": event.status, "previous_status": event.previous_status},
    )


async def on_loyalty_tier_changed(
    session: AsyncSession, event: LoyaltyTierChanged, envelope: Envelope
) -> None:
    """The current tier on the summary, and a timeline entry ("Loyalty tier: Gold")."""
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.loyalty_tier(customer_id, event.tier, event.changed_at)
    tier = _label(event.tier) if event.tier else "none"
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.changed_at,
        kind=f"loyalty.{event.direction}",
        title=f"Loyalty tier: {tier}"
        + (f" (was {_label(event.previous_tier)})" if event.previous_tier else ""),
        data={
            "tier": event.tier,
            "previous_tier": event.previous_tier,
            "rolling_points": event.rolling_points,
        },
    )


# --- interactions ---------------------------------------------------------------------------
async def on_behaviour_recorded(
    session: AsyncSession, event: BehaviourRecorded, envelope: Envelope
) -> None:
    """Web/app behaviour, coalesced per ingested batch: it moves the last interaction and
    makes one timeline entry ("Browsed: 12 page views, 2 searches")."""
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.interaction(
        customer_id, occurred_at=event.last_occurred_at, channel=event.last_channel
    )
    what = ", ".join(
        f"{n} {_label(kind).lower()}{'s' if n != 1 else ''}"
        for kind, n in sorted(event.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.last_occurred_at,
        kind="interaction.behaviour",
        title=f"Browsed: {what} ({', '.join(event.channels) or event.last_channel})",
        data={
            "counts": event.counts,
            "urls": event.urls,
            "products": event.products,
            "search_terms": event.search_terms,
        },
    )


async def on_interaction_recorded(
    session: AsyncSession, event: InteractionRecorded, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.interaction(customer_id, occurred_at=event.occurred_at, channel=event.channel)
    how = f"{event.channel}, {event.direction}" if event.direction else event.channel
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.occurred_at,
        kind=f"interaction.{_slug(event.kind)}",
        title=f"{_label(event.kind)} ({how})",
        summary=event.summary,
        reference_id=event.interaction_id,
        data={"channel": event.channel, "kind": event.kind, "direction": event.direction},
    )


async def on_ticket_opened(session: AsyncSession, event: TicketOpened, envelope: Envelope) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.ticket(
        customer_id, ticket_id=event.ticket_id, status="open", at=event.opened_at, opened=True
    )
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.opened_at,
        kind="ticket.opened",
        title=f"Ticket opened ({event.category}, {event.priority})",
        # The title is free text (it may quote the customer): it goes where PII is withheld.
        summary=event.title,
        reference_id=event.ticket_id,
        data={"category": event.category, "priority": event.priority},
    )


async def on_ticket_status_changed(
    session: AsyncSession, event: TicketStatusChanged, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.ticket(
        customer_id,
        ticket_id=event.ticket_id,
        status=event.status,
        at=event.changed_at,
        opened=False,
    )
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.changed_at,
        kind=f"ticket.{event.status}",
        title=f"Ticket {'reopened' if event.status == 'open' else event.status}",
        reference_id=event.ticket_id,
        data={"status": event.status, "previous_status": event.previous_status},
    )


async def on_survey_answered(
    session: AsyncSession, event: SurveyAnswered, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    if event.survey == "csat":
        scale = 5
        # The contract allows 0 to 10 for both surveys; a CSAT outside 1 to 5 stays on the
        # timeline but would distort the average.
        if 1 <= event.score <= 5:
            await repo.csat(customer_id, event.score)
    else:
        scale = 10
        await repo.nps(customer_id, event.score, event.answered_at)
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.answered_at,
        kind=f"survey.{event.survey}",
        title=f"{event.survey.upper()} answered: {event.score}/{scale}",
        reference_id=event.response_id,
        data={
            "score": event.score,
            "ticket_id": str(event.ticket_id) if event.ticket_id else None,
            "order_id": str(event.order_id) if event.order_id else None,
        },
    )


# --- segmentation ---------------------------------------------------------------------------
async def on_segment_entered(
    session: AsyncSession, event: SegmentEntered, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.segment_entered(customer_id, event.segment_id)
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.entered_at,
        kind="segment.entered",
        title="Entered a segment",
        reference_id=event.segment_id,
        data={"segment_id": str(event.segment_id)},
    )


async def on_segment_exited(
    session: AsyncSession, event: SegmentExited, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.segment_exited(customer_id, event.segment_id)
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.exited_at,
        kind="segment.exited",
        title="Left a segment",
        reference_id=event.segment_id,
        data={"segment_id": str(event.segment_id)},
    )


async def on_customer_scored(
    session: AsyncSession, event: CustomerScored, envelope: Envelope
) -> None:
    # Scores change often and carry no story of their own: aggregate only, no timeline entry.
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.scored(
        customer_id,
        {
            "recency": event.recency,
            "frequency": event.frequency,
            "monetary": event.monetary,
            "rfm_segment": event.rfm_segment,
            "lifecycle_stage": event.lifecycle_stage,
            "clv": event.clv,
            "clv_currency": event.clv_currency.upper() if event.clv_currency else None,
            "churn_risk": event.churn_risk,
        },
        event.scored_at,
    )


# --- customer360's own events ---------------------------------------------------------------
async def on_customer_created(
    session: AsyncSession, event: CustomerCreated, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.ensure_summary(customer_id)
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.created_at,
        kind="profile.created",
        title=f"{_label(event.kind)} profile created",
        data={"kind": event.kind, "acquisition_channel": event.acquisition_channel},
    )


async def on_customer_updated(
    session: AsyncSession, event: CustomerUpdated, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    # Field names only: the new values may be personal data, and the profile has them.
    fields = sorted(event.changes)
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.updated_at,
        kind="profile.updated",
        title=f"Profile updated: {', '.join(fields)}",
        data={"fields": fields, "actor": event.actor},
    )


async def on_consent_changed(
    session: AsyncSession, event: CustomerConsentChanged, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    customer_id = await _target(repo, event)
    if customer_id is None:
        return
    await repo.add_entry(
        customer_id,
        event_id=envelope.id,
        occurred_at=event.changed_at,
        kind="consent.changed",
        title=f"{_CHANNEL_NAMES[event.channel]} consent "
        f"{'given' if event.granted else 'withdrawn'}",
        data={
            "channel": event.channel,
            "granted": event.granted,
            "source": event.source,
            "actor": event.actor,
        },
    )


async def on_customer_merged(
    session: AsyncSession, event: CustomerMerged, envelope: Envelope
) -> None:
    repo = ViewRepository(session)
    survivor = await _target(repo, event)
    if survivor is None:  # the survivor was erased since: so goes what it absorbed
        await repo.erase(event.merged_id)
        return
    await repo.merge(survivor, event.merged_id)
    await repo.add_entry(
        survivor,
        event_id=envelope.id,
        occurred_at=event.merged_at,
        kind="customer.merged",
        title="Duplicate profile merged into this one",
        reference_id=event.merged_id,
        data={"merged_id": str(event.merged_id), "merged_by": event.merged_by},
    )


async def on_customer_erased(
    session: AsyncSession, event: CustomerErased, envelope: Envelope
) -> None:
    # Not resolved: the erased id itself is what goes, and the profile already says erased.
    await ViewRepository(session).erase(event.customer_id)
