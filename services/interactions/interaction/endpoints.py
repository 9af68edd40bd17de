from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, status

from services.interactions.interaction import service
from services.interactions.interaction.repository import InteractionRepository
from services.interactions.interaction.schemas import InteractionCreate, InteractionRead
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage

router = APIRouter(prefix="/interactions", tags=["interactions"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record an interaction",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses=problem_responses(401, 403, 413),
)
async def record_interaction(body: InteractionCreate, session: SessionDep) -> InteractionRead:
    """Record one touchpoint with a customer: a call, an e-mail, a chat, a meeting, a note, a
    page view…

    `occurred_at` is when it happened (send it with a UTC offset); leave it out to use the time
    of the request. The customer id is not checked against customer360 here: interactions
    may arrive before the profile does.

    Publishes `rapport.interaction.recorded.v1` once the interaction is stored.
    """
    interaction = await service.record_interaction(session, body)
    return InteractionRead.model_validate(interaction)


@router.get(
    "",
    summary="List interactions",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403),
)
async def list_interactions(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    customer_id: Annotated[
        UUID | None, Query(description="Only this customer's interactions (their timeline).")
    ] = None,
) -> CursorPage[InteractionRead]:
    """Interactions in the order they happened (`occurred_at`, oldest first), one page at a
    time. Pass the `next_cursor` of a page as `cursor` to get the next one; it is absent on
    the last page. Only customers within the caller's data scope are included."""
    items, next_cursor = await InteractionRepository(session).list(
        page, principal, customer_id=customer_id
    )
    return CursorPage(
        items=[InteractionRead.model_validate(i) for i in items], next_cursor=next_cursor
    )
