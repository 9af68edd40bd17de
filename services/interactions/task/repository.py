from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Task, customer_scope
from services.interactions.scheduling import claim_batch
from shared.auth import Principal
from shared.pagination import CursorParams, paginate
from shared.privacy import visible_customers


@dataclass
class TaskFilter:
    status: str | None = None
    assignee_id: str | None = None
    customer_id: UUID | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None
    source: str | None = None
    rule_id: UUID | None = None


@dataclass
class DueTask:
    task_id: UUID
    customer_id: UUID
    title: str
    assignee_id: str | None
    due_at: datetime
    source: str
    rule_id: UUID | None
    rule_type: str | None
    occurs_on: date | None


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, task: Task) -> Task:
        self.session.add(task)
        await self.session.flush()
        await self.session.refresh(task)
        return task

    async def get(self, task_id: UUID, principal: Principal, *, lock: bool = False) -> Task | None:
        statement = select(Task).where(
            Task.id == task_id, visible_customers(principal, Task.customer_id, customer_scope)
        )
        if lock:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).first()

    async def flush(self, task: Task) -> Task:
        await self.session.flush()
        await self.session.refresh(task)
        return task

    async def delete(self, task: Task) -> None:
        await self.session.delete(task)
        await self.session.flush()

    async def find(
        self, params: CursorParams, principal: Principal, f: TaskFilter
    ) -> tuple[list[Task], str | None]:
        """Tasks soonest due first (``due_at``, ``id``)."""
        statement = select(Task).where(
            visible_customers(principal, Task.customer_id, customer_scope)
        )
        if f.status is not None:
            statement = statement.where(Task.status == f.status)
        if f.assignee_id is not None:
            statement = statement.where(Task.assignee_id == f.assignee_id)
        if f.customer_id is not None:
            statement = statement.where(Task.customer_id == f.customer_id)
        if f.due_from is not None:
            statement = statement.where(Task.due_at >= f.due_from)
        if f.due_to is not None:
            statement = statement.where(Task.due_at < f.due_to)
        if f.source is not None:
            statement = statement.where(Task.source == f.source)
        if f.rule_id is not None:
            statement = statement.where(Task.rule_id == f.rule_id)
        return await paginate(
            self.session,
            statement,
            keys=[Task.due_at, Task.id],
            key_of=lambda t: (t.due_at, t.id),
            params=params,
        )

    async def mark_due(self, now: datetime, limit: int) -> list[DueTask]:
        """Mark up to ``limit`` open tasks whose due time has come as announced at ``now`` and
        return them, as the SLA breach scan does: ``SKIP LOCKED`` shares the work between
        replicas and the repeated condition makes each due time announce once."""
        pending = (Task.status == "open", Task.due_notified_at.is_(None))
        claimed = claim_batch(
            select(Task.id).where(*pending, Task.due_at <= now).order_by(Task.due_at).limit(limit)
        )
        result = await self.session.execute(
            update(Task)
            .where(Task.id == claimed.c.id, *pending)
            .values(due_notified_at=now)
            .returning(
                Task.id,
                Task.customer_id,
                Task.title,
                Task.assignee_id,
                Task.due_at,
                Task.source,
                Task.rule_id,
                Task.rule_type,
                Task.occurs_on,
            )
            .execution_options(synchronize_session=False)
        )
        return [DueTask(*row) for row in result.all()]
