from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, extract, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import SlaPolicy, Ticket, TicketComment, customer_scope
from services.interactions.scheduling import claim_batch
from shared.auth import Principal
from shared.pagination import CursorParams, paginate
from shared.privacy import visible_customers

OPEN_STATUSES = ("open", "pending")


@dataclass
class TicketFilter:
    status: str | None = None
    priority: str | None = None
    assignee_id: str | None = None
    team_id: str | None = None
    customer_id: UUID | None = None
    breached: bool | None = None


@dataclass
class Breach:
    ticket_id: UUID
    customer_id: UUID
    due_at: datetime
    priority: str
    assignee_id: str | None


class TicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
        await self.session.refresh(ticket)
        return ticket

    async def get(
        self, ticket_id: UUID, principal: Principal, *, lock: bool = False
    ) -> Ticket | None:
        statement = select(Ticket).where(
            Ticket.id == ticket_id, visible_customers(principal, Ticket.customer_id, customer_scope)
        )
        if lock:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).first()

    async def flush(self, ticket: Ticket) -> Ticket:
        await self.session.flush()
        await self.session.refresh(ticket)
        return ticket

    async def find(
        self, params: CursorParams, principal: Principal, filters: TicketFilter
    ) -> tuple[list[Ticket], str | None]:
        statement = select(Ticket).where(
            visible_customers(principal, Ticket.customer_id, customer_scope)
        )
        f = filters
        if f.status is not None:
            statement = statement.where(Ticket.status == f.status)
        if f.priority is not None:
            statement = statement.where(Ticket.priority == f.priority)
        if f.assignee_id is not None:
            statement = statement.where(Ticket.assignee_id == f.assignee_id)
        if f.team_id is not None:
            statement = statement.where(Ticket.team_id == f.team_id)
        if f.customer_id is not None:
            statement = statement.where(Ticket.customer_id == f.customer_id)
        if f.breached is not None:
            any_breach = or_(
                Ticket.first_response_breached_at.is_not(None),
                Ticket.resolution_breached_at.is_not(None),
            )
            statement = statement.where(any_breach if f.breached else ~any_breach)
        return await paginate(
            self.session,
            statement,
            keys=[Ticket.opened_at, Ticket.id],
            key_of=lambda t: (t.opened_at, t.id),
            params=params,
            descending=True,
        )

    async def add_comment(self, comment: TicketComment) -> TicketComment:
        self.session.add(comment)
        await self.session.flush()
        return comment

    async def comments(
        self, ticket_id: UUID, params: CursorParams, *, public_only: bool
    ) -> tuple[list[TicketComment], str | None]:
        statement = select(TicketComment).where(TicketComment.ticket_id == ticket_id)
        if public_only:
            statement = statement.where(TicketComment.public.is_(True))
        return await paginate(
            self.session,
            statement,
            keys=[TicketComment.created_at, TicketComment.id],
            key_of=lambda c: (c.created_at, c.id),
            params=params,
        )

    # --- SLA -------------------------------------------------------------------------------
    async def policy(self, priority: str) -> SlaPolicy | None:
        return await self.session.get(SlaPolicy, priority)

    async def policies(self) -> list[SlaPolicy]:
        return list(
            (await self.session.scalars(select(SlaPolicy).order_by(SlaPolicy.priority))).all()
        )

    async def mark_breaches(self, target: str, now: datetime, limit: int) -> list[Breach]:
        """Mark up to ``limit`` tickets past their ``target`` due time as breached at ``now``
        and return them. ``SKIP LOCKED`` lets replicas share the work; the condition repeated
        in the UPDATE makes a row breach at most once even if two scans overlap."""
        if target == "first_response":
            due, mark = Ticket.first_response_due_at, Ticket.first_response_breached_at
            pending: Any = and_(
                Ticket.first_responded_at.is_(None),
                mark.is_(None),
                Ticket.status.in_(OPEN_STATUSES),
            )
        else:
            due, mark = Ticket.resolution_due_at, Ticket.resolution_breached_at
            pending = and_(mark.is_(None), Ticket.status.in_(OPEN_STATUSES))
        claimed = claim_batch(
            select(Ticket.id).where(pending, due <= now).order_by(due).limit(limit)
        )
        result = await self.session.execute(
            update(Ticket)
            .where(Ticket.id == claimed.c.id, pending)
            .values({mark: now})
            .returning(Ticket.id, Ticket.customer_id, due, Ticket.priority, Ticket.assignee_id)
            .execution_options(synchronize_session=False)
        )
        return [Breach(r[0], r[1], r[2], r[3], r[4]) for r in result.all()]

    async def stats(
        self,
        principal: Principal,
        *,
        group_by: str,
        since: datetime | None,
        until: datetime | None,
    ) -> list[dict[str, Any]]:
        key = Ticket.assignee_id if group_by == "agent" else Ticket.team_id
        first = extract("epoch", Ticket.first_responded_at - Ticket.opened_at) / 60
        resolution = extract("epoch", Ticket.resolved_at - Ticket.opened_at) / 60
        statement = (
            select(
                key.label("key"),
                func.count().label("tickets"),
                func.count(Ticket.first_response_breached_at).label("first_response_breached"),
                func.count(Ticket.resolution_breached_at).label("resolution_breached"),
                func.percentile_cont(0.5).within_group(first).label("first_median"),
                func.avg(first).label("first_avg"),
                func.percentile_cont(0.5).within_group(resolution).label("resolution_median"),
                func.avg(resolution).label("resolution_avg"),
            )
            .where(visible_customers(principal, Ticket.customer_id, customer_scope))
            .group_by(key)
            .order_by(key.asc().nulls_last())
        )
        if since is not None:
            statement = statement.where(Ticket.opened_at >= since)
        if until is not None:
            statement = statement.where(Ticket.opened_at < until)
        rows = (await self.session.execute(statement)).mappings().all()
        return [dict(r) for r in rows]
