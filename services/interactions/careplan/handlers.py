"""The care-plan projections, kept from other services' events (never their tables).

- customer360: birthday, timezone and lifecycle stage (``CustomerCreated`` / ``Updated``);
  the owner comes from the shared ``customer_scope`` projection.
- segmentation: segment membership (``SegmentEntered`` / ``SegmentExited``).
- orders: orders placed (``OrderPlaced``), for post-purchase follow-ups.
- CSAT answers are this service's own (``survey_response``).
"""

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.careplan.repository import ProjectionRepository
from shared.events import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    Envelope,
    OrderPlaced,
    SegmentEntered,
    SegmentExited,
)


async def on_customer_created(session: AsyncSession, event: CustomerCreated, _: Envelope) -> None:
    repo = ProjectionRepository(session)
    await repo.upsert_customer(
        event.customer_id,
        {
            "birthday": event.birthday,
            "timezone": await repo.known_timezone(event.timezone),
            "lifecycle_stage": event.lifecycle_stage,
            "lifecycle_since": event.created_at if event.lifecycle_stage else None,
        },
    )


def _date(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


async def on_customer_updated(session: AsyncSession, event: CustomerUpdated, _: Envelope) -> None:
    changes = event.changes
    repo = ProjectionRepository(session)
    values: dict[str, Any] = {}
    if "birthday" in changes:
        values["birthday"] = _date(changes["birthday"])
    if "timezone" in changes:
        tz = changes["timezone"]
        values["timezone"] = await repo.known_timezone(tz if isinstance(tz, str) else None)
    if "lifecycle_stage" in changes:
        stage = changes["lifecycle_stage"]
        values["lifecycle_stage"] = str(stage)[:30] if stage is not None else None
        values["lifecycle_since"] = event.updated_at  # a revisit period counts from here
    if values:
        await repo.upsert_customer(event.customer_id, values)


async def on_segment_entered(session: AsyncSession, event: SegmentEntered, _: Envelope) -> None:
    await ProjectionRepository(session).enter_segment(
        event.segment_id, event.customer_id, event.entered_at
    )


async def on_segment_exited(session: AsyncSession, event: SegmentExited, _: Envelope) -> None:
    await ProjectionRepository(session).exit_segment(event.segment_id, event.customer_id)


async def on_order_placed(session: AsyncSession, event: OrderPlaced, _: Envelope) -> None:
    await ProjectionRepository(session).add_order(
        event.order_id, event.customer_id, event.placed_at, event.total, event.currency
    )


async def on_customer_merged(session: AsyncSession, event: CustomerMerged, _: Envelope) -> None:
    await ProjectionRepository(session).merge(event.merged_id, event.customer_id)


async def on_customer_erased(session: AsyncSession, event: CustomerErased, _: Envelope) -> None:
    await ProjectionRepository(session).forget(event.customer_id)
