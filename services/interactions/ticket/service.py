"""Ticket commands. Each changes the ticket and queues its events in the caller's transaction.

Status workflow::

    open ⇄ pending
    open, pending → resolved → closed
    resolved, closed → open          (reopen)
    open, pending → closed           (e.g. spam, duplicate)
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import SlaPolicy, Ticket, TicketComment
from services.interactions.ticket.repository import TicketRepository
from services.interactions.ticket.schemas import CommentCreate, TicketCreate, TicketPatch
from services.interactions.ticket.sla import BusinessHours, due_at
from shared.auth import Principal
from shared.errors import Conflict, PreconditionFailed, ServiceUnavailable
from shared.events import TicketOpened, TicketStatusChanged
from shared.messaging import publish

ALLOWED: dict[str, tuple[str, ...]] = {
    "open": ("pending", "resolved", "closed"),
    "pending": ("open", "resolved", "closed"),
    "resolved": ("open", "closed"),
    "closed": ("open",),
}


def etag(ticket: Ticket) -> str:
    return f'"{ticket.version}"'


def business_hours(policy: SlaPolicy) -> BusinessHours | None:
    if not policy.business_days or policy.business_start_hour is None:
        return None
    assert policy.business_end_hour is not None
    return BusinessHours(
        frozenset(policy.business_days),
        policy.business_start_hour,
        policy.business_end_hour,
        policy.timezone,
    )


async def _apply_sla(repo: TicketRepository, ticket: Ticket) -> None:
    policy = await repo.policy(ticket.priority)
    if policy is None:  # the migration seeds every priority; only a hand-deleted row gets here
        raise ServiceUnavailable(f"no SLA policy for priority {ticket.priority!r}")
    hours = business_hours(policy)
    ticket.first_response_due_at = due_at(ticket.opened_at, policy.first_response_minutes, hours)
    ticket.resolution_due_at = due_at(ticket.opened_at, policy.resolution_minutes, hours)


async def open_ticket(session: AsyncSession, data: TicketCreate, now: datetime) -> Ticket:
    repo = TicketRepository(session)
    ticket = Ticket(
        customer_id=data.customer_id,
        order_id=data.order_id,
        title=data.title,
        description=data.description,
        category=data.category,
        priority=data.priority,
        channel=data.channel,
        status="open",
        opened_at=now,
        version=1,
        updated_at=now,
    )
    await _apply_sla(repo, ticket)
    ticket = await repo.add(ticket)
    await publish(
        session,
        TicketOpened(
            customer_id=ticket.customer_id,
            ticket_id=ticket.id,
            title=ticket.title,
            category=ticket.category,
            priority=ticket.priority,
            opened_at=ticket.opened_at,
        ),
    )
    return ticket


def _check_etag(ticket: Ticket, if_match: str | None) -> None:
    if if_match is not None and if_match.strip() not in (etag(ticket), "*"):
        raise PreconditionFailed(
            f"the ticket changed since you read it (now {etag(ticket)}); read it again",
            current_etag=etag(ticket),
        )


async def update_ticket(
    session: AsyncSession, ticket: Ticket, patch: TicketPatch, now: datetime, if_match: str | None
) -> Ticket:
    _check_etag(ticket, if_match)
    repo = TicketRepository(session)
    changes = patch.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(ticket, name, value)
    if "priority" in changes:
        await _apply_sla(repo, ticket)
    ticket.version += 1
    ticket.updated_at = now
    return await repo.flush(ticket)


async def transition(
    session: AsyncSession, ticket: Ticket, to: str, now: datetime, if_match: str | None
) -> Ticket:
    _check_etag(ticket, if_match)
    previous = ticket.status
    allowed = ALLOWED[previous]
    if to not in allowed:
        raise Conflict(
            f"a {previous} ticket cannot move to {to}; allowed: {', '.join(allowed)}",
            current_status=previous,
            allowed=list(allowed),
        )
    ticket.status = to
    if to == "resolved":
        ticket.resolved_at = now
    elif to == "closed":
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif to == "open" and previous in ("resolved", "closed"):
        ticket.resolved_at = None
        ticket.closed_at = None
    ticket.version += 1
    ticket.updated_at = now
    ticket = await TicketRepository(session).flush(ticket)
    await publish(
        session,
        TicketStatusChanged(
            customer_id=ticket.customer_id,
            ticket_id=ticket.id,
            status=to,
            previous_status=previous,
            changed_at=now,
        ),
    )
    return ticket


async def add_comment(
    session: AsyncSession,
    ticket: Ticket,
    data: CommentCreate,
    principal: Principal,
    now: datetime,
) -> TicketComment:
    repo = TicketRepository(session)
    comment = await repo.add_comment(
        TicketComment(
            ticket_id=ticket.id,
            author_id=principal.subject,
            author_kind=data.author_kind,
            body=data.body,
            public=data.public,
            created_at=now,
        )
    )
    if data.public and data.author_kind == "agent" and ticket.first_responded_at is None:
        ticket.first_responded_at = now
        ticket.version += 1
        ticket.updated_at = now
        await repo.flush(ticket)
    return comment
