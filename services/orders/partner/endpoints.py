from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from services.orders.models import PartnerEvent
from services.orders.partner.schemas import PartnerEventRead
from shared.auth import require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage, paginate

router = APIRouter(prefix="/orders", tags=["orders"])


@router.get(
    "/partner-events",
    summary="Partner order webhooks as orders handled them",
    dependencies=[Depends(require_scopes("orders:read", "admin"))],
    responses=problem_responses(400, 401, 403),
)
async def list_partner_events(
    session: SessionDep,
    page: CursorDep,
    source: Annotated[str | None, Query(max_length=50)] = None,
    external_order_id: Annotated[str | None, Query(max_length=200)] = None,
    status: Literal["parked", "applied", "failed"] | None = None,
) -> CursorPage[PartnerEventRead]:
    """Admins only. Oldest first. `status=parked` lists the actions waiting for their order
    (or, for a refund, its payment): they apply by themselves when it arrives. One still
    parked after `ORDERS_PARTNER_PARKED_TTL_S` (7 days) is given up: it becomes `failed`,
    its payload is dropped, and the gateway's log shows the webhook failed — replay it once
    the shop has sent its `order.created`. `status=failed` lists what was refused, with the
    reason."""
    statement = select(PartnerEvent)
    if source is not None:
        statement = statement.where(PartnerEvent.source == source)
    if external_order_id is not None:
        statement = statement.where(PartnerEvent.external_order_id == external_order_id)
    if status is not None:
        statement = statement.where(PartnerEvent.status == status)
    items: list[PartnerEvent]
    items, next_cursor = await paginate(
        session,
        statement,
        keys=[PartnerEvent.received_at, PartnerEvent.id],
        key_of=lambda e: (e.received_at, e.id),
        params=page,
    )
    return CursorPage(
        items=[PartnerEventRead.model_validate(e) for e in items], next_cursor=next_cursor
    )
