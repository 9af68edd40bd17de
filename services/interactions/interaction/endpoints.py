from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from services.interactions.interaction import service
from services.interactions.interaction.repository import (
    InteractionFilters,
    InteractionRepository,
)
from services.interactions.interaction.schemas import (
    BatchRequest,
    BatchResult,
    Channel,
    Direction,
    InteractionCreate,
    InteractionRead,
    Kind,
)
from services.interactions.models.base import customer_scope
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import BadRequest, NotFound, problem_responses
from shared.pagination import CursorDep, CursorPage
from shared.privacy import ensure_customer_visible

router = APIRouter(tags=["interactions"])


@router.post(
    "/interactions",
    status_code=status.HTTP_201_CREATED,
    summary="Record an interaction",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={
        200: {"model": InteractionRead, "description": "Its `event_id` was stored before"},
        **problem_responses(401, 403, 404, 413, 422, 503),
    },
)
async def record_interaction(
    body: InteractionCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    request: Request,
) -> InteractionRead:
    """Record one touchpoint with a customer: a call, an e-mail, an SMS, a chat, a social
    mention/comment/like/share, a meeting or visit, a note, an e-mail platform event, or web/app
    behaviour (page view, click, search). `kind` selects the shape of `metadata`.

    `occurred_at` is when it happened (send it with a UTC offset); leave it out to use the time
    of the request. Times before 1970 or more than 5 minutes ahead are refused. An unknown
    customer is a `422` (`unknown-customer`); one created moments ago is confirmed with
    customer360 (`503` if it cannot be asked); one outside the caller's data scope is a `404`.

    With an `event_id` the request is idempotent: repeating it answers `200` with the
    interaction stored the first time.

    Publishes `rapport.interaction.recorded.v1` once stored (behaviour kinds publish
    `rapport.interaction.behaviour_recorded.v1` instead).
    """
    await ensure_customer_visible(session, principal, body.customer_id, customer_scope)
    interaction, created = await service.record_interaction(
        session, request.app.state.customer_resolver, body
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return InteractionRead.model_validate(interaction)


@router.post(
    "/interactions:batch",
    summary="Ingest a batch of interactions",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses=problem_responses(401, 403, 413, 503),
)
async def ingest_interactions(
    body: BatchRequest, session: SessionDep, principal: PrincipalDep, request: Request
) -> BatchResult:
    """High-volume ingest (behaviour tracking, partner imports): up to 1,000 events, each
    shaped like the body of `POST /interactions` plus an optional `event_id`, in one request
    of at most 1 MiB.

    Each event is validated and stored **on its own**: bad ones never block good ones. The
    answer is `200` whenever the batch itself was readable, with one result per event, by
    index: `stored` (with the new `id`), `duplicate` (its `event_id` was stored before for
    this `source`, or repeats an earlier item of the batch; `id` is the stored one) or
    `error` with an RFC 9457 `problem` whose pointers start at `/events/{index}`:

    * `/problems/validation-failed`: wrong or missing fields, an unknown enum value, a time
      before 1970 or more than 5 minutes ahead, an oversize text, metadata that does not fit
      the kind;
    * `/problems/unknown-customer`: no such customer (never existed, or erased, or outside
      the caller's data scope). Customers
      interactions has not heard of yet (created moments ago) are confirmed with customer360,
      up to 20 per batch; a `503` means it could not be asked, and nothing was stored.

    A batch that cannot be read at all (not JSON, no `events`, more than 1,000) is a `4xx`
    problem and stores nothing. Retrying a whole batch is safe when its events carry
    `event_id`s: what was stored comes back as `duplicate`.

    Why `200` and not `207 Multi-Status`: 207 is WebDAV's, with an XML body by definition; the
    outcome here is always in the body, and generic clients treat every 2xx alike anyway.

    Human touchpoints publish `rapport.interaction.recorded.v1` each; behaviour publishes one
    `rapport.interaction.behaviour_recorded.v1` per customer per batch.
    """
    results = await service.ingest(
        session, request.app.state.customer_resolver, body.source, body.events, principal
    )
    counts = {s: sum(1 for r in results if r.status == s) for s in ("stored", "duplicate", "error")}
    return BatchResult(
        stored=counts["stored"],
        duplicates=counts["duplicate"],
        errors=counts["error"],
        results=results,
    )


@router.get(
    "/interactions",
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
    channel: Annotated[
        list[Channel] | None, Query(description="Only these channels (repeat the parameter).")
    ] = None,
    kind: Annotated[
        list[Kind] | None, Query(description="Only these kinds (repeat the parameter).")
    ] = None,
    direction: Annotated[Direction | None, Query()] = None,
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    occurred_from: Annotated[
        datetime | None, Query(description="Only from this time on (inclusive).")
    ] = None,
    occurred_to: Annotated[
        datetime | None, Query(description="Only before this time (exclusive).")
    ] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="`desc`: newest first.")] = "asc",
) -> CursorPage[InteractionRead]:
    """Interactions in the order they happened (`occurred_at`, oldest first unless
    `order=desc`), one page at a time, filtered. Pass the `next_cursor` of a page as `cursor`
    (with the same filters and order) to get the next one; it is absent on the last page.
    Only customers within the caller's data scope are included."""
    for name, value in (("occurred_from", occurred_from), ("occurred_to", occurred_to)):
        if value is not None and value.tzinfo is None:
            raise BadRequest(
                f"{name} needs a UTC offset",
                errors=[{"pointer": f"/query/{name}", "detail": "needs a UTC offset"}],
            )
    filters = InteractionFilters(
        customer_id=customer_id,
        channels=channel or (),
        kinds=kind or (),
        direction=direction,
        agent_id=agent_id,
        source=source,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )
    items, next_cursor = await InteractionRepository(session).list(
        page, principal, filters, newest_first=order == "desc"
    )
    return CursorPage(
        items=[InteractionRead.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.get(
    "/interactions/{interaction_id}",
    summary="Get an interaction",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403, 404),
)
async def get_interaction(
    interaction_id: UUID, session: SessionDep, principal: PrincipalDep
) -> InteractionRead:
    """One interaction, if its customer is within the caller's data scope (`404` otherwise)."""
    interaction = await InteractionRepository(session).get(interaction_id, principal)
    if interaction is None:
        raise NotFound(f"interaction {interaction_id} does not exist")
    return InteractionRead.model_validate(interaction)
