from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from services.interactions.models.base import Base, customer_scope
from services.interactions.task import service
from services.interactions.task.dependencies import LockedTaskDep, TaskDep
from services.interactions.task.repository import TaskFilter, TaskRepository
from services.interactions.task.schemas import Source, Status, TaskCreate, TaskPatch, TaskRead
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses, raise_if_invalid
from shared.etag import ETAG_RESPONSE, IfMatch
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage
from shared.privacy import ensure_customer_visible

router = APIRouter(prefix="/tasks", tags=["tasks"])

_IDEMPOTENCY = Base.metadata.tables["interactions.idempotency_key"]


def _now() -> datetime:
    return datetime.now(UTC)


def _with_etag(response: Response, task: Any) -> None:
    response.headers["ETag"] = service.etag(task)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a follow-up task",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={201: ETAG_RESPONSE, **problem_responses(401, 403, 404, 413, 422)},
)
async def create_task(
    body: TaskCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskRead:
    """Create a follow-up for a customer, due at `due_at` (with a UTC offset). When it falls
    due the scheduler publishes `rapport.interaction.task_due.v1` once. With an
    `Idempotency-Key`, a retry returns the first answer. A customer outside the caller's
    data scope is a `404`."""
    await ensure_customer_visible(session, principal, body.customer_id, customer_scope)
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation="create_task",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed(etag=True)) is not None:
        return replayed  # type: ignore[return-value]
    task = await service.create_task(session, body, principal, _now())
    read = TaskRead.for_principal(task, principal)
    await claim.complete(status.HTTP_201_CREATED, read.model_dump(mode="json"))
    _with_etag(response, task)
    response.headers["Location"] = f"/tasks/{task.id}"
    return read


@router.get(
    "",
    summary="List tasks",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses=problem_responses(400, 401, 403, 422),
)
async def list_tasks(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="Agent id.")] = None,
    customer_id: UUID | None = None,
    due_from: Annotated[
        datetime | None, Query(description="Due at or after (ISO 8601 with offset).")
    ] = None,
    due_to: Annotated[
        datetime | None, Query(description="Due before (ISO 8601 with offset).")
    ] = None,
    source: Source | None = None,
    rule_id: Annotated[UUID | None, Query(description="Made by this care-plan rule.")] = None,
) -> CursorPage[TaskRead]:
    """Tasks soonest due first, one page at a time (pass `next_cursor` as `cursor`). For
    an agent's overdue list: `assignee=…&status=open&due_to=<now>`. Only customers within
    the caller's data scope are included."""
    errors = []
    for name, value in (("due_from", due_from), ("due_to", due_to)):
        if value is not None and value.tzinfo is None:
            errors.append({"pointer": f"/query/{name}", "detail": "needs a UTC offset"})
    if due_from and due_to and due_from.tzinfo and due_to.tzinfo and due_from >= due_to:
        errors.append({"pointer": "/query/due_to", "detail": "must be after due_from"})
    raise_if_invalid(errors)
    items, next_cursor = await TaskRepository(session).find(
        page,
        principal,
        TaskFilter(
            status=status_,
            assignee_id=assignee,
            customer_id=customer_id,
            due_from=due_from,
            due_to=due_to,
            source=source,
            rule_id=rule_id,
        ),
    )
    return CursorPage(
        items=[TaskRead.for_principal(t, principal) for t in items], next_cursor=next_cursor
    )


@router.get(
    "/{task_id}",
    summary="Get a task",
    dependencies=[Depends(require_scopes("interactions:read"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 422)},
)
async def get_task(task: TaskDep, principal: PrincipalDep, response: Response) -> TaskRead:
    """One task by id; `404` also when its customer is outside the caller's data scope.
    `notes` are withheld without `customers:pii`."""
    _with_etag(response, task)
    return TaskRead.for_principal(task, principal)


@router.patch(
    "/{task_id}",
    summary="Update a task",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def update_task(
    task: LockedTaskDep,
    body: TaskPatch,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> TaskRead:
    """Retitle, add notes, reassign or reschedule an open task (`409` once it is done or
    cancelled). A new `due_at` publishes `task_due` again when it comes."""
    task = await service.update_task(session, task, body, _now(), if_match)
    _with_etag(response, task)
    return TaskRead.for_principal(task, principal)


@router.post(
    "/{task_id}:complete",
    summary="Mark a task done",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def complete_task(
    task: LockedTaskDep,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> TaskRead:
    """`open → done`, by the caller. A task that is already done or cancelled answers `409`.

    Publishes `rapport.interaction.task_completed.v1`."""
    task = await service.complete(session, task, principal, _now(), if_match)
    _with_etag(response, task)
    return TaskRead.for_principal(task, principal)


@router.post(
    "/{task_id}:cancel",
    summary="Cancel a task",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 409, 412, 422)},
)
async def cancel_task(
    task: LockedTaskDep,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> TaskRead:
    """`open → cancelled`. A task that is already done or cancelled answers `409`."""
    task = await service.cancel(session, task, _now(), if_match)
    _with_etag(response, task)
    return TaskRead.for_principal(task, principal)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task",
    dependencies=[Depends(require_scopes("interactions:write"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_task(task: LockedTaskDep, session: SessionDep) -> Response:
    """Remove a task entered by mistake (prefer `:cancel` to keep the history). A deleted
    care-plan task is not created again: its occasion stays recorded."""
    await TaskRepository(session).delete(task)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
