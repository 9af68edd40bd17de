from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from services.interactions.models import SlaPolicy
from services.interactions.models.base import Base, customer_scope
from services.interactions.ticket import service
from services.interactions.ticket.dependencies import LockedTicketDep, TicketDep
from services.interactions.ticket.repository import TicketFilter, TicketRepository
from services.interactions.ticket.schemas import (
    CommentCreate,
    CommentRead,
    Priority,
    SlaPolicyRead,
    SlaPolicyWrite,
    Status,
    TicketCreate,
    TicketPatch,
    TicketRead,
    TicketStats,
    TicketStatsRow,
    TicketTransition,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import NotFound, UnprocessableEntity, problem_responses
from shared.etag import ETAG_RESPONSE, IfMatch
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage
from shared.privacy import ensure_customer_visible

router = APIRouter(prefix="/tickets", tags=["tickets"])

_IDEMPOTENCY = Base.metadata.tables["interactions.idempotency_key"]


def _now() -> datetime:
    return datetime.now(UTC)


def _with_etag(response: Response, ticket: Any) -> None:
    response.headers["ETag"] = service.etag(ticket)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Open a ticket",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={201: ETAG_RESPONSE, **problem_responses(401, 403, 404, 413, 422)},
)
async def open_ticket(
    body: TicketCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TicketRead:
    """Open a support ticket for a customer. Its first-response and resolution due times
    come from the SLA policy of its priority (business hours honoured when the policy has
    them). With an `Idempotency-Key`, a retry returns the first answer. A customer outside
    the caller's data scope is a `404`.

    Publishes `rapport.interaction.ticket_opened.v1`."""
    await ensure_customer_visible(session, principal, body.customer_id, customer_scope)
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="open_ticket",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed(etag=True)) is not None:
        return replayed  # type: ignore[return-value]
    ticket = await service.open_ticket(session, body, _now())
    # Keys are per principal, so the stored answer is already this caller's (masked) view.
    read = TicketRead.for_principal(ticket, principal)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    _with_etag(response, ticket)
    response.headers["Location"] = f"/tickets/{ticket.id}"
    return read


@router.get(
    "",
    summary="List tickets",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(400, 401, 403, 422),
)
async def list_tickets(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    priority: Priority | None = None,
    assignee: Annotated[str | None, Query(max_length=200, description="Agent id.")] = None,
    team: Annotated[str | None, Query(max_length=100)] = None,
    customer_id: UUID | None = None,
    breached: Annotated[
        bool | None,
        Query(description="true: missed first response or resolution; false: neither."),
    ] = None,
) -> CursorPage[TicketRead]:
    """Tickets, newest first, one page at a time (pass `next_cursor` as `cursor`). Only
    customers within the caller's data scope are included."""
    items, next_cursor = await TicketRepository(session).find(
        page,
        principal,
        TicketFilter(
            status=status_,
            priority=priority,
            assignee_id=assignee,
            team_id=team,
            customer_id=customer_id,
            breached=breached,
        ),
    )
    return CursorPage(
        items=[TicketRead.for_principal(t, principal) for t in items], next_cursor=next_cursor
    )


@router.get(
    "/stats",
    summary="Ticket figures per agent or team",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403, 422),
)
async def ticket_stats(
    session: SessionDep,
    principal: PrincipalDep,
    group_by: Literal["agent", "team"] = "agent",
    since: Annotated[datetime | None, Query(description="Opened at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Opened before (ISO 8601).")] = None,
) -> TicketStats:
    """Per agent (assignee) or team, over tickets opened in `[since, until)`: how many,
    how many breached their first-response and resolution targets (and the rates), and the
    median and average minutes to first response and to resolution. Unassigned tickets are
    grouped under `key: null`."""
    errors = []
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            errors.append({"pointer": f"/query/{name}", "detail": "needs a UTC offset"})
    if since and until and since.tzinfo and until.tzinfo and since >= until:
        errors.append({"pointer": "/query/until", "detail": "must be after since"})
    if errors:
        raise UnprocessableEntity("invalid time window", errors=errors)
    rows = await TicketRepository(session).stats(
        principal, group_by=group_by, since=since, until=until
    )
    groups = []
    for r in rows:
        n = r["tickets"]
        groups.append(
            TicketStatsRow(
                key=r["key"],
                tickets=n,
                first_response_breached=r["first_response_breached"],
                resolution_breached=r["resolution_breached"],
                first_response_breach_rate=round(r["first_response_breached"] / n, 4),
                resolution_breach_rate=round(r["resolution_breached"] / n, 4),
                first_response_minutes_median=_num(r["first_median"]),
                first_response_minutes_avg=_num(r["first_avg"]),
                resolution_minutes_median=_num(r["resolution_median"]),
                resolution_minutes_avg=_num(r["resolution_avg"]),
            )
        )
    return TicketStats(group_by=group_by, since=since, until=until, groups=groups)


def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


@router.get(
    "/sla-policies",
    summary="List SLA policies",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403),
)
async def list_sla_policies(session: SessionDep) -> list[SlaPolicyRead]:
    """The first-response and resolution targets of every priority."""
    return [SlaPolicyRead.model_validate(p) for p in await TicketRepository(session).policies()]


@router.get(
    "/sla-policies/{priority}",
    summary="Get an SLA policy",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_sla_policy(priority: Priority, session: SessionDep) -> SlaPolicyRead:
    """The targets (minutes) and business hours for one priority."""
    policy = await TicketRepository(session).policy(priority)
    if policy is None:
        raise NotFound(f"no SLA policy for {priority}")
    return SlaPolicyRead.model_validate(policy)


@router.put(
    "/sla-policies/{priority}",
    summary="Set an SLA policy",
    dependencies=[Depends(require_scopes("admin"))],
    responses=problem_responses(401, 403, 422),
)
async def put_sla_policy(
    priority: Priority, body: SlaPolicyWrite, session: SessionDep
) -> SlaPolicyRead:
    """Replace the targets of one priority (admins only). Applies to tickets opened or
    reprioritised afterwards; open tickets keep the due times they were given."""
    repo = TicketRepository(session)
    policy = await repo.policy(priority)
    if policy is None:
        policy = SlaPolicy(priority=priority)
        session.add(policy)
    for name, value in body.model_dump().items():
        setattr(policy, name, value)
    policy.updated_at = _now()
    await session.flush()
    return SlaPolicyRead.model_validate(policy)


@router.get(
    "/{ticket_id}",
    summary="Get a ticket",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 422)},
)
async def get_ticket(ticket: TicketDep, principal: PrincipalDep, response: Response) -> TicketRead:
    """One ticket by id; `404` also when its customer is outside the caller's data scope.
    `description` is withheld without `customers:pii`."""
    _with_etag(response, ticket)
    return TicketRead.for_principal(ticket, principal)


@router.patch(
    "/{ticket_id}",
    summary="Update a ticket",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 412, 422)},
)
async def update_ticket(
    ticket: LockedTicketDep,
    body: TicketPatch,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    """Reprioritise, recategorise, retitle or assign (agent `assignee_id`, `team_id`).
    A new priority recomputes both due times from `opened_at`. Send `If-Match` to be safe
    against lost updates. Status changes use `POST /tickets/{id}:transition`."""
    ticket = await service.update_ticket(session, ticket, body, _now(), if_match)
    _with_etag(response, ticket)
    return TicketRead.for_principal(ticket, principal)


@router.post(
    "/{ticket_id}:transition",
    summary="Change a ticket's status",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def transition_ticket(
    ticket: LockedTicketDep,
    body: TicketTransition,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    """Move the ticket through `open → pending → resolved → closed`; `open` again reopens a
    resolved or closed one. A move the workflow does not allow answers `409` with `allowed`
    listing the statuses reachable from the current one.

    Publishes `rapport.interaction.ticket_status_changed.v1`."""
    ticket = await service.transition(session, ticket, body.to, _now(), if_match)
    _with_etag(response, ticket)
    return TicketRead.for_principal(ticket, principal)


@router.post(
    "/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    summary="Comment on a ticket",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def add_comment(
    ticket: LockedTicketDep,
    body: CommentCreate,
    session: SessionDep,
    principal: PrincipalDep,
) -> CommentRead:
    """Add a public reply or an internal note (`public: false`); the author is the caller.
    The first public agent comment records the ticket's `first_responded_at`, which stops
    its first-response SLA clock."""
    comment = await service.add_comment(session, ticket, body, principal, _now())
    return CommentRead.for_principal(comment, principal)


@router.get(
    "/{ticket_id}/comments",
    summary="List a ticket's comments",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_comments(
    ticket: TicketDep,
    session: SessionDep,
    principal: PrincipalDep,
    page: CursorDep,
    public_only: Annotated[bool, Query(description="Leave out internal notes.")] = False,
) -> CursorPage[CommentRead]:
    """Comments oldest first. Bodies are withheld without `customers:pii`."""
    items, next_cursor = await TicketRepository(session).comments(
        ticket.id, page, public_only=public_only
    )
    return CursorPage(
        items=[CommentRead.for_principal(c, principal) for c in items], next_cursor=next_cursor
    )
