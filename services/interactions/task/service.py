"""Task commands. Each changes the task and queues its events in the caller's transaction.

Status workflow::

    open → done        (publishes TaskCompleted)
    open → cancelled

``done`` and ``cancelled`` are final: a task that must happen again is a new task.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.interactions.models import Task
from services.interactions.task.repository import TaskRepository
from services.interactions.task.schemas import TaskCreate, TaskPatch
from shared.auth import Principal
from shared.errors import Conflict, PreconditionFailed
from shared.events import TaskCompleted
from shared.messaging import publish


def etag(task: Task) -> str:
    return f'"{task.version}"'


def _check_etag(task: Task, if_match: str | None) -> None:
    if if_match is not None and if_match.strip() not in (etag(task), "*"):
        raise PreconditionFailed(
            f"the task changed since you read it (now {etag(task)}); read it again",
            current_etag=etag(task),
        )


def _require_open(task: Task, action: str) -> None:
    if task.status != "open":
        raise Conflict(
            f"a {task.status} task cannot be {action}; only open tasks can",
            current_status=task.status,
            allowed=[],
        )


async def create_task(
    session: AsyncSession, data: TaskCreate, principal: Principal, now: datetime
) -> Task:
    return await TaskRepository(session).add(
        Task(
            customer_id=data.customer_id,
            assignee_id=data.assignee_id,
            title=data.title,
            notes=data.notes,
            due_at=data.due_at,
            status="open",
            source="manual",
            created_by=principal.subject,
            created_at=now,
            version=1,
            updated_at=now,
        )
    )


async def update_task(
    session: AsyncSession, task: Task, patch: TaskPatch, now: datetime, if_match: str | None
) -> Task:
    _check_etag(task, if_match)
    _require_open(task, "changed")
    changes = patch.model_dump(exclude_unset=True)
    if "due_at" in changes and changes["due_at"] != task.due_at:
        task.due_notified_at = None  # a new due time is announced again when it comes
    for name, value in changes.items():
        setattr(task, name, value)
    task.version += 1
    task.updated_at = now
    return await TaskRepository(session).flush(task)


async def complete(
    session: AsyncSession, task: Task, principal: Principal, now: datetime, if_match: str | None
) -> Task:
    _check_etag(task, if_match)
    _require_open(task, "completed")
    task.status = "done"
    task.completed_at = now
    task.completed_by = principal.subject
    task.version += 1
    task.updated_at = now
    task = await TaskRepository(session).flush(task)
    await publish(
        session,
        TaskCompleted(
            customer_id=task.customer_id,
            task_id=task.id,
            completed_at=now,
            completed_by=principal.subject,
            assignee=task.assignee_id,
            rule_id=task.rule_id,
        ),
    )
    return task


async def cancel(session: AsyncSession, task: Task, now: datetime, if_match: str | None) -> Task:
    _check_etag(task, if_match)
    _require_open(task, "cancelled")
    task.status = "cancelled"
    task.cancelled_at = now
    task.version += 1
    task.updated_at = now
    return await TaskRepository(session).flush(task)
