from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.customer360.customer.dependencies import CustomerDep
from services.customer360.customer.schemas import CustomerRead
from services.customer360.view.repository import ViewRepository
from services.customer360.view.schemas import (
    Customer360Read,
    CustomerAggregates,
    KindFilter,
    TimelineEntryRead,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage, CursorParams

router = APIRouter(prefix="/customers", tags=["customers"])


@router.get(
    "/{customer_id}/360",
    summary="A customer's 360 view",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404, 410),
)
async def customer_360(
    customer: CustomerDep,
    session: SessionDep,
    principal: PrincipalDep,
    timeline_limit: Annotated[
        int, Query(ge=1, le=100, description="How many of the latest timeline entries.")
    ] = 20,
) -> Customer360Read:
    """The profile, the figures and the latest timeline entries of one customer, in one
    answer: what a customer page shows first.

    The figures (orders and spend per currency, last interaction, open tickets, CSAT, NPS,
    segments, RFM, lifecycle stage, CLV, churn risk) are built from the other services'
    events as they arrive, usually well under a second behind them; a customer no event
    mentioned yet has zeros. The profile is masked like `GET /customers/{id}` (personal data
    needs `customers:pii`); a merged-away id answers with its survivor; `404` also outside
    the caller's data scope; `410` once erased. For older timeline entries, page through
    `GET /customers/{id}/timeline` with `timeline_next_cursor`.
    """
    repo = ViewRepository(session)
    entries, next_cursor = await repo.timeline(
        customer.id, CursorParams(cursor=None, limit=timeline_limit)
    )
    return Customer360Read(
        profile=CustomerRead.for_principal(customer, principal),
        aggregates=CustomerAggregates.build(
            await repo.summary(customer.id), await repo.spend(customer.id)
        ),
        timeline=[TimelineEntryRead.for_principal(e, principal) for e in entries],
        timeline_next_cursor=next_cursor,
    )


@router.get(
    "/{customer_id}/timeline",
    summary="A customer's timeline",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(400, 401, 403, 404, 410),
)
async def customer_timeline(
    customer: CustomerDep,
    session: SessionDep,
    principal: PrincipalDep,
    page: CursorDep,
    kind: Annotated[
        list[KindFilter],
        Query(
            max_length=20,
            description="Only these kinds: exact (`order.placed`) or a whole family "
            "(`interaction` for every `interaction.*`). Repeat for several.",
            examples=["order", "ticket.opened"],
        ),
    ] = [],  # noqa: B006
) -> CursorPage[TimelineEntryRead]:
    """What happened to the customer, newest first, one page at a time: orders and their
    status changes, interactions, tickets, surveys, segment moves, profile changes, consent
    changes and merges (a merged duplicate's history is folded into the survivor's).

    Free-text `summary` (what an interaction said, a ticket's title) may hold personal data
    and is `null` without `customers:pii`. Pass the `next_cursor` of a page as `cursor` for
    the next, older page. Entries appear as
    the events arrive, usually well under a second after the source committed them.
    """
    entries, next_cursor = await ViewRepository(session).timeline(customer.id, page, kind)
    return CursorPage(
        items=[TimelineEntryRead.for_principal(e, principal) for e in entries],
        next_cursor=next_cursor,
    )
