from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.interactions.models import Task
from services.interactions.task.repository import TaskRepository
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import NotFound


async def get_task_or_404(task_id: UUID, session: SessionDep, principal: PrincipalDep) -> Task:
    """The task, if its customer is within the caller's data scope (else 404)."""
    task = await TaskRepository(session).get(task_id, principal)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return task


async def lock_task_or_404(task_id: UUID, session: SessionDep, principal: PrincipalDep) -> Task:
    """Like :func:`get_task_or_404`, holding the row lock until the request commits, so two
    agents completing one task serialise and the second gets a 409."""
    task = await TaskRepository(session).get(task_id, principal, lock=True)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return task


TaskDep = Annotated[Task, Depends(get_task_or_404)]
LockedTaskDep = Annotated[Task, Depends(lock_task_or_404)]
