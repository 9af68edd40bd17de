"""Event handlers that fold other services' events into ``customer_features`` and the
per-customer event log, then re-evaluate the customer's segment memberships.

The consumer runner calls each handler inside the transaction that also claims the event id
in the inbox, so a redelivered event never reaches a handler twice. The handlers therefore
*count* (``order_count + 1``) rather than recompute, and must not dedupe on their own: two
distinct events with equal payloads are two orders.

Each handler names what it changed (feature columns and ``event:<type>``): only the dynamic
segments that read one of those are evaluated again, for this customer only.

In the consumer the evaluation is deferred to the end of the transaction
(:func:`shared.messaging.deferred`): a group of events evaluates every customer it touched in
one statement, against the segments reading anything the group changed; entries and exits
are the net change of the group. Called directly, a handler evaluates at once.
"""

import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.features.repository import (
    CONSENT_COLUMNS,
    CustomerFeaturesRepository,
    profile_values,
)
from services.segmentation.models import SegmentMember
from services.segmentation.segments.membership import reevaluate, segments_to_lock
from shared.db import driver_connection
from shared.events import (
    BehaviourRecorded,
    CustomerConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    Envelope,
    InteractionRecorded,
    LoyaltyTierChanged,
    OrderPlaced,
    OrderStatusChanged,
    SurveyAnswered,
    TicketOpened,
    TicketStatusChanged,
)
from shared.messaging import deferred

ORDER_INPUTS = frozenset(
    {
        "order_count",
        "total_spent",
        "first_order_at",
        "last_order_at",
        "orders_30d",
        "orders_90d",
        "orders_365d",
        "event:order_placed",
    }
)
INTERACTION_INPUTS = frozenset(
    {
        "interaction_count",
        "last_interaction_at",
        "interactions_by_channel",
        "interactions_by_kind",
        "event:interaction",
    }
)
_OPEN = {"open", "pending"}


def _now() -> datetime:
    return datetime.now(UTC)


H = TypeVar("H", bound=Callable[..., Awaitable[None]])

_SURVIVOR_SQL = "SELECT survivor_id FROM segmentation.customer_redirects WHERE merged_id = $1::uuid"


async def _survivor(session: AsyncSession, customer_id: UUID) -> UUID | None:
    """Who ``customer_id`` was merged into (``None``: not merged)."""
    driver = await driver_connection(session)
    found: UUID | None = await driver.fetchval(_SURVIVOR_SQL, customer_id)
    return found


def for_survivor(handler: H) -> H:
    """An event about a merged customer counts for the survivor. Events travel on several
    topics (and the merge on the survivor's partition), so one sent before the merge may be
    consumed after it; without this it would start a fresh row under the merged id."""

    async def wrapped(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        survivor = await _survivor(session, event.customer_id)
        if survivor is not None:
            event = event.model_copy(update={"customer_id": survivor})
        await handler(session, event, envelope)

    return cast(H, functools.wraps(handler)(wrapped))


def unless_merged(handler: H) -> H:
    """A profile event about a merged customer is dropped: the survivor's profile is what
    customer360 kept (and the late one would bring back a merged person's data)."""

    async def wrapped(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        if await _survivor(session, event.customer_id) is None:
            await handler(session, event, envelope)

    return cast(H, functools.wraps(handler)(wrapped))


#: One customer's evaluation owed: what changed (``None``: anything), the customer, and the
#: segments whose shared locks the transaction already holds.
_Owed = tuple[frozenset[str] | None, UUID, tuple[UUID, ...]]


async def _changed(
    session: AsyncSession,
    customer_id: UUID,
    inputs: set[str] | frozenset[str] | None,
    *,
    locked: Sequence[UUID] = (),
) -> None:
    owed = deferred(session, reevaluate_deferred)
    if owed is None:
        changed = None if inputs is None else set(inputs)
        await reevaluate(session, [customer_id], changed, _now(), locked=locked)
    else:
        owed.add((None if inputs is None else frozenset(inputs), customer_id, tuple(locked)))


async def reevaluate_deferred(session: AsyncSession, owed: set[_Owed]) -> None:
    """The consumer's commit hook: evaluate every customer the transaction's events touched,
    in one statement, against the segments that read anything they changed."""
    changed: set[str] | None = set()
    customers: set[UUID] = set()
    locked: set[UUID] = set()
    for inputs, customer_id, held in owed:
        customers.add(customer_id)
        locked.update(held)
        if inputs is None:
            changed = None
        elif changed is not None:
            changed |= inputs
    await reevaluate(session, sorted(customers), changed, _now(), locked=sorted(locked))


@unless_merged
async def on_customer_created(
    session: AsyncSession, event: CustomerCreated, envelope: Envelope
) -> None:
    values = profile_values(event.model_dump(exclude={"customer_id"}))
    values["customer_created_at"] = event.created_at
    await CustomerFeaturesRepository(session).upsert(event.customer_id, values)
    await _changed(session, event.customer_id, set(values))


@unless_merged
async def on_customer_updated(
    session: AsyncSession, event: CustomerUpdated, envelope: Envelope
) -> None:
    values = profile_values(event.changes)
    if not values:
        return
    await CustomerFeaturesRepository(session).upsert(event.customer_id, values)
    await _changed(session, event.customer_id, set(values))


@unless_merged
async def on_consent_changed(
    session: AsyncSession, event: CustomerConsentChanged, envelope: Envelope
) -> None:
    column = CONSENT_COLUMNS[event.channel]
    await CustomerFeaturesRepository(session).upsert(event.customer_id, {column: event.granted})
    await _changed(session, event.customer_id, {column})


@for_survivor
async def on_order_placed(session: AsyncSession, event: OrderPlaced, envelope: Envelope) -> None:
    currency = event.currency.upper()
    now = _now()
    # The hot path: the segment locks ride on the feature write (one round trip fewer).
    lock = segments_to_lock(set(ORDER_INPUTS))
    await CustomerFeaturesRepository(session).record_order(
        event.customer_id,
        total=event.total,
        currency=currency,
        placed_at=event.placed_at,
        attrs={
            "total": format(event.total, "f"),
            "currency": currency,
            "channel": event.channel,
            "source": event.source,
            "skus": sorted({item.sku for item in event.items}),
        },
        now=now,
        lock=lock,
    )
    await _changed(session, event.customer_id, ORDER_INPUTS, locked=lock)


@for_survivor
async def on_order_status_changed(
    session: AsyncSession, event: OrderStatusChanged, envelope: Envelope
) -> None:
    repo = CustomerFeaturesRepository(session)
    await repo.log_event(
        event.customer_id,
        "order_status_changed",
        event.changed_at,
        {"status": event.status, "previous_status": event.previous_status},
    )
    changed = {"event:order_status_changed"}
    if await repo.recount_order(event.order_id, event.customer_id, event.status, event.changed_at):
        changed |= ORDER_INPUTS
    await _changed(session, event.customer_id, changed)


@for_survivor
async def on_interaction_recorded(
    session: AsyncSession, event: InteractionRecorded, envelope: Envelope
) -> None:
    repo = CustomerFeaturesRepository(session)
    await repo.record_interaction(
        event.customer_id, occurred_at=event.occurred_at, channel=event.channel, kind=event.kind
    )
    await repo.log_event(
        event.customer_id,
        "interaction",
        event.occurred_at,
        {"channel": event.channel, "kind": event.kind, "direction": event.direction},
    )
    await _changed(session, event.customer_id, INTERACTION_INPUTS)


@for_survivor
async def on_behaviour_recorded(
    session: AsyncSession, event: BehaviourRecorded, envelope: Envelope
) -> None:
    """Coalesced web/app behaviour (one event per customer per ingested batch) counts like
    that many interactions: ``performed page_view at least 10 times`` sees each page view.
    Per kind the channel is the batch's last one (the event does not split them further)."""
    repo = CustomerFeaturesRepository(session)
    for kind, n in sorted(event.counts.items()):
        await repo.record_interaction(
            event.customer_id,
            occurred_at=event.last_occurred_at,
            channel=event.last_channel,
            kind=kind,
            count=n,
        )
        await repo.log_event(
            event.customer_id,
            "interaction",
            event.last_occurred_at,
            {"channel": event.last_channel, "kind": kind, "direction": "inbound"},
            times=min(n, 1000),
        )
    await _changed(session, event.customer_id, INTERACTION_INPUTS)


@for_survivor
async def on_ticket_opened(session: AsyncSession, event: TicketOpened, envelope: Envelope) -> None:
    repo = CustomerFeaturesRepository(session)
    await repo.record_ticket(event.customer_id, opened=1, newly_open=1)
    await repo.log_event(
        event.customer_id,
        "ticket_opened",
        event.opened_at,
        {"category": event.category, "priority": event.priority},
    )
    await _changed(
        session, event.customer_id, {"ticket_count", "open_tickets", "event:ticket_opened"}
    )


@for_survivor
async def on_ticket_status_changed(
    session: AsyncSession, event: TicketStatusChanged, envelope: Envelope
) -> None:
    was_open, is_open = event.previous_status in _OPEN, event.status in _OPEN
    repo = CustomerFeaturesRepository(session)
    if was_open != is_open:
        await repo.record_ticket(event.customer_id, opened=0, newly_open=1 if is_open else -1)
    await repo.log_event(
        event.customer_id,
        "ticket_status_changed",
        event.changed_at,
        {"status": event.status, "previous_status": event.previous_status},
    )
    await _changed(session, event.customer_id, {"open_tickets", "event:ticket_status_changed"})


@for_survivor
async def on_survey_answered(
    session: AsyncSession, event: SurveyAnswered, envelope: Envelope
) -> None:
    repo = CustomerFeaturesRepository(session)
    await repo.record_survey(
        event.customer_id, survey=event.survey, score=event.score, answered_at=event.answered_at
    )
    await repo.log_event(
        event.customer_id,
        "survey_answered",
        event.answered_at,
        {"survey": event.survey, "score": event.score},
    )
    await _changed(
        session,
        event.customer_id,
        {f"last_{event.survey}", f"last_{event.survey}_at", "event:survey_answered"},
    )


@for_survivor
async def on_loyalty_tier_changed(
    session: AsyncSession, event: LoyaltyTierChanged, envelope: Envelope
) -> None:
    """``loyalty_tier`` as a feature (``loyalty_tier eq gold``) and the change in the event
    log (``performed loyalty_tier_changed where direction = upgrade``)."""
    repo = CustomerFeaturesRepository(session)
    await repo.record_loyalty_tier(event.customer_id, tier=event.tier, changed_at=event.changed_at)
    await repo.log_event(
        event.customer_id,
        "loyalty_tier_changed",
        event.changed_at,
        {
            "tier": event.tier,
            "previous_tier": event.previous_tier,
            "direction": event.direction,
        },
    )
    await _changed(session, event.customer_id, {"loyalty_tier", "event:loyalty_tier_changed"})


async def on_customer_erased(
    session: AsyncSession, event: CustomerErased, envelope: Envelope
) -> None:
    # The row holds the display name: a privacy erase removes it with the rest (features,
    # event log, memberships). An order event that arrives later starts a fresh row.
    await CustomerFeaturesRepository(session).forget(event.customer_id)
    await session.execute(
        delete(SegmentMember).where(SegmentMember.customer_id == event.customer_id)
    )


async def on_customer_merged(
    session: AsyncSession, event: CustomerMerged, envelope: Envelope
) -> None:
    """The duplicate's features, events and static-list memberships are the survivor's now;
    the survivor's dynamic memberships are evaluated again on the folded features.

    The duplicate's memberships are dropped without events: every consumer of segment events
    folds the duplicate into the survivor on ``CustomerMerged`` itself."""
    await CustomerFeaturesRepository(session).fold_into(event.customer_id, event.merged_id)
    inherited = (
        await session.execute(
            select(SegmentMember.segment_id, SegmentMember.version).where(
                SegmentMember.customer_id == event.merged_id
            )
        )
    ).all()
    await session.execute(delete(SegmentMember).where(SegmentMember.customer_id == event.merged_id))
    if inherited:
        # Dynamic ones among these are settled by the evaluation below (it sees the row
        # and keeps or removes it); static ones simply move.
        await session.execute(
            insert(SegmentMember)
            .values(
                [
                    {"segment_id": s, "customer_id": event.customer_id, "version": v}
                    for s, v in inherited
                ]
            )
            .on_conflict_do_nothing()
        )
    await _changed(session, event.customer_id, None)
