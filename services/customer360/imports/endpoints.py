from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request, Response, status
from sqlalchemy import select

from services.customer360.imports.parsing import spool_upload
from services.customer360.imports.schemas import ImportJobRead, ImportRowErrorRead
from services.customer360.imports.service import run_job
from services.customer360.models import ImportJob, ImportRowError
from shared.auth import Principal, PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import NotFound, RapportError, problem_responses
from shared.pagination import CursorDep, CursorPage, paginate

router = APIRouter(prefix="/imports", tags=["imports"])

_FORMATS = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/ndjson": "ndjson"}


class UnsupportedMediaType(RapportError):
    status = 415
    slug = "unsupported-media-type"


async def get_job_or_404(job_id: UUID, session: SessionDep, principal: PrincipalDep) -> ImportJob:
    job = await session.get(ImportJob, job_id)
    # Someone else's import looks like none, unless the caller sees everything.
    if job is None or (principal.scope_mode != "all" and job.created_by != principal.subject):
        raise NotFound(f"import {job_id} does not exist")
    return job


JobDep = Annotated[ImportJob, Depends(get_job_or_404)]


def _visible(job: ImportJob, principal: Principal) -> ImportJobRead:
    return ImportJobRead.model_validate(job)


@router.post(
    "/customers",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import customers from CSV or NDJSON",
    dependencies=[Depends(require_scopes("customers:write"))],
    responses=problem_responses(400, 401, 403, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "display_name,email,phone,tags,custom.tier\n"
                    "张伟,wei@example.com,+8613812345678,vip|newsletter,gold\n",
                },
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": '{"display_name": "张伟", "emails": ["wei@example.com"]}\n',
                },
            },
        }
    },
)
async def import_customers(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    background: BackgroundTasks,
    content_type: Annotated[str, Header()] = "",
) -> ImportJobRead:
    """Upload a file of customers; `202` with the import job, processed in the background.

    **CSV** (UTF-8, header row, `,` `;` or tab): `display_name` (or `given_name`/`family_name`)
    and at least one of `email`, `phone` (E.164), `external_id` (with `external_system`);
    optional `tags` (`a|b`), `owner_id`, `team_id`, `custom.<field key>`.
    **NDJSON**: one object per line with the same names, or `emails`, `phones`,
    `external_ids`, `custom_fields`.

    A row whose e-mail, phone or external id already belongs to a customer updates that
    customer (lists are added to) — if it is within your data scope; otherwise the row fails,
    as creating it would (`409`). Other rows create customers. Bad rows are listed at
    `GET /imports/{id}/errors` and never stop the good ones; a file that is not UTF-8, has no
    header or lacks required columns, or mixes delimiters is refused at once with `400`.
    Follow progress at the `Location` header.
    """
    fmt = _FORMATS.get(content_type.split(";")[0].strip().lower())
    if fmt is None:
        raise UnsupportedMediaType(
            "send text/csv or application/x-ndjson", accepted=sorted(_FORMATS)
        )
    path, delimiter = await spool_upload(request.stream(), fmt)
    job = ImportJob(format=fmt, created_by=principal.subject)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    # The job row is committed with the response (request dependency); the task runs after.
    background.add_task(
        run_job,
        request.app.state.database,
        job.id,
        path,
        fmt,
        delimiter,
        principal.subject,
        request.app.state.settings.default_phone_region,
        principal,
    )
    response.headers["Location"] = f"/imports/{job.id}"
    return _visible(job, principal)


@router.get(
    "/{job_id}",
    summary="Get an import's progress",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404),
)
async def get_import(job: JobDep, principal: PrincipalDep) -> ImportJobRead:
    """Status (`queued`, `running`, `done`, `failed`) and row counts of one import."""
    return _visible(job, principal)


@router.get(
    "/{job_id}/errors",
    summary="List an import's row errors",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404),
)
async def list_import_errors(
    job: JobDep, session: SessionDep, page: CursorDep
) -> CursorPage[ImportRowErrorRead]:
    """Rows that were not imported and why, in file order, one page at a time."""
    items: list[ImportRowError]
    items, next_cursor = await paginate(
        session,
        select(ImportRowError).where(ImportRowError.job_id == job.id),
        keys=[ImportRowError.id],
        key_of=lambda e: (e.id,),
        params=page,
    )
    return CursorPage(
        items=[ImportRowErrorRead.model_validate(e) for e in items], next_cursor=next_cursor
    )
