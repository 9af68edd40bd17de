import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from services.segmentation.models import idempotency
from services.segmentation.segments import service
from services.segmentation.segments.dependencies import LockedSegmentDep, SegmentDep
from services.segmentation.segments.repository import SegmentRepository
from services.segmentation.segments.schemas import (
    RULE_EXAMPLES,
    CustomerSegment,
    MemberRead,
    MembersChange,
    MembersChanged,
    PreviewRequest,
    PreviewResult,
    RecomputeResult,
    SegmentCreate,
    SegmentPatch,
    SegmentRead,
    SegmentWritten,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import Database, SessionDep
from shared.errors import MalformedBody, RapportError, problem_responses, raise_if_invalid
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage

router = APIRouter(tags=["segments"])


class UnsupportedMediaType(RapportError):
    status = 415
    slug = "unsupported-media-type"


READ = [Depends(require_scopes("segments:read"))]
WRITE = [Depends(require_scopes("segments:write"))]


def _now() -> datetime:
    return datetime.now(UTC)


def _written(
    segment: Any, recomputed: list[Any], member_count: int | None = None
) -> SegmentWritten:
    read = SegmentRead.model_validate(segment).model_dump()
    read["member_count"] = member_count
    return SegmentWritten(
        **read,
        recomputed=[RecomputeResult(**vars(r)) for r in recomputed],
    )


@router.post(
    "/segments",
    status_code=status.HTTP_201_CREATED,
    summary="Create a segment",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 409, 413, 422),
)
async def create_segment(
    body: Annotated[
        SegmentCreate,
        Body(
            openapi_examples={
                name: {
                    "summary": example["summary"],
                    "value": {
                        "name": example["summary"],
                        "kind": "dynamic",
                        "rule": example["value"],
                    },
                }
                for name, example in RULE_EXAMPLES.items()
            }
            | {
                "static": {
                    "summary": "A hand-picked list",
                    "value": {
                        "name": "Trade-fair leads 2026",
                        "kind": "static",
                        "customer_ids": ["0f8fad5b-d9cb-469f-a165-70867728950e"],
                    },
                }
            }
        ),
    ],
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SegmentWritten:
    """Create a **dynamic** segment (a rule over the customers' features; see the examples)
    or a **static** one (a list of customers). The membership is computed before the answer:
    `recomputed` says how many customers entered. Each entry is published as
    `rapport.segment.entered.v1`; from then on customers enter and leave as events change
    their features, within about a second.

    A rule that does not validate is answered `422` with one entry per problem in `errors`,
    each with a JSON `pointer` to the offending node (e.g. `/body/rule/all/1/op`) and a `code`:
    `unknown-field`, `unknown-operator`, `type-mismatch`, `invalid-value`, `unknown-key`,
    `unknown-segment`, `cycle`, `rule-too-deep`, `rule-too-large`."""
    claim = await claim_key(
        session,
        idempotency,
        principal.subject,
        idempotency_key,
        operation="create_segment",
        payload=body.model_dump(mode="json"),
    )
    if (replayed := claim.replayed()) is not None:
        return replayed  # type: ignore[return-value]
    segment, recomputed = await service.create(session, body, principal, _now())
    written = _written(segment, recomputed)
    await claim.complete(status.HTTP_201_CREATED, written.model_dump(mode="json"))
    response.headers["Location"] = f"/segments/{segment.id}"
    return written


@router.post(
    "/segments:preview",
    summary="Preview a rule: count and sample, nothing saved",
    dependencies=READ,
    responses=problem_responses(401, 403, 422),
)
async def preview_segment(
    body: Annotated[
        PreviewRequest,
        Body(
            openapi_examples={
                name: {"summary": e["summary"], "value": {"rule": e["value"], "sample_size": 5}}
                for name, e in RULE_EXAMPLES.items()
            }
        ),
    ],
    session: SessionDep,
    principal: PrincipalDep,
) -> PreviewResult:
    """How many customers (within your data scope) a rule selects right now, and a sample of
    up to 100 of them, without saving anything. Validation is the same as for a create. A
    rule that takes longer than 5 s to count is refused with `422` (`code: too-expensive`)
    instead of scanning on."""
    count, sample = await service.preview(session, body.rule, body.sample_size, principal, _now())
    return PreviewResult(count=count, sample=sample)


@router.get(
    "/segments",
    summary="List segments",
    dependencies=READ,
    responses=problem_responses(400, 401, 403, 422),
)
async def list_segments(session: SessionDep, page: CursorDep) -> CursorPage[SegmentRead]:
    """Segments, newest first, one page at a time (pass `next_cursor` as `cursor`)."""
    items, next_cursor = await SegmentRepository(session).page(page)
    return CursorPage(items=[SegmentRead.model_validate(s) for s in items], next_cursor=next_cursor)


@router.get(
    "/segments/{segment_id}",
    summary="Get a segment",
    dependencies=READ,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_segment(
    segment: SegmentDep, session: SessionDep, principal: PrincipalDep
) -> SegmentRead:
    """The definition, with `member_count` (members within your data scope)."""
    read = SegmentRead.model_validate(segment)
    read.member_count = await SegmentRepository(session).member_count(segment.id, principal)
    return read


@router.patch(
    "/segments/{segment_id}",
    summary="Rename a segment or change its rule",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_segment(
    body: SegmentPatch, segment: LockedSegmentDep, session: SessionDep
) -> SegmentWritten:
    """A new rule is a new `version`: the membership is recomputed at that version before the
    answer, and only the differences are published (entered / exited). Segments that include
    this one through `member_of` are recomputed too (`recomputed` lists them). Members never
    mix versions. Changing a static segment's rule is `409`."""
    recomputed = await service.update(session, segment, body, _now())
    return _written(segment, recomputed)


@router.delete(
    "/segments/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a segment",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def delete_segment(segment: LockedSegmentDep, session: SessionDep) -> Response:
    """Every member is told it left (`rapport.segment.exited.v1`). `409` while another
    segment includes this one through `member_of` (`used_by` lists them)."""
    await service.delete(session, segment, _now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/segments/{segment_id}/members",
    summary="Add or remove members of a static segment",
    dependencies=WRITE,
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
async def change_members(
    body: MembersChange, segment: LockedSegmentDep, session: SessionDep
) -> MembersChanged:
    """Hand-pick (or upload, up to 10,000 ids per call) members of a **static** segment.
    Ids already in (for `add`) or not in (for `remove`) are ignored; what changed is
    published and counted. A dynamic segment answers `409`."""
    added, removed = await service.change_members(session, segment, body.add, body.remove, _now())
    return MembersChanged(added=added, removed=removed)


MAX_UPLOAD_ERRORS = 20


@router.post(
    "/segments/{segment_id}/members:upload",
    summary="Upload the members of a static segment (CSV)",
    dependencies=WRITE,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "customer_id\n0f8fad5b-d9cb-469f-a165-70867728950e\n",
                }
            },
        }
    },
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
)
async def upload_members(
    segment: LockedSegmentDep,
    session: SessionDep,
    request: Request,
    mode: Annotated[
        Literal["add", "replace"],
        Query(description="`add` to the list, or `replace` it (members not in the file leave)."),
    ] = "add",
) -> MembersChanged:
    """A CSV file (`text/csv`) whose first column holds customer ids, one per line; a
    `customer_id` header line and blank lines are skipped. Up to the request body limit
    (1 MiB by default: about 27,000 ids); upload more in several `add` calls. Lines that are
    not ids are answered `422` with a pointer to each (`/body/line/<n>`, the first 20), and
    nothing changes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "text/plain"):
        raise UnsupportedMediaType(f"send the file as text/csv (got {content_type or 'none'})")
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedBody("the file is not UTF-8 text") from None
    ids: list[UUID] = []
    errors: list[dict[str, Any]] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cell = row[0].strip() if row else ""
        if not cell or (number == 1 and cell.lower() == "customer_id"):
            continue
        try:
            ids.append(UUID(cell))
        except ValueError:
            if len(errors) < MAX_UPLOAD_ERRORS:
                errors.append(
                    {
                        "pointer": f"/body/line/{number}",
                        "detail": "not a customer id",
                        "code": "invalid",
                    }
                )
    raise_if_invalid(errors)
    if mode == "replace":
        added, removed = await service.replace_members(session, segment, ids, _now())
    else:
        added, removed = await service.change_members(session, segment, ids, [], _now())
    return MembersChanged(added=added, removed=removed)


@router.get(
    "/segments/{segment_id}/members",
    summary="List a segment's members",
    dependencies=READ,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_members(
    segment: SegmentDep, session: SessionDep, principal: PrincipalDep, page: CursorDep
) -> CursorPage[MemberRead]:
    """Members within your data scope, in customer id order, one page at a time, each with
    the definition version that put them there."""
    items, next_cursor = await SegmentRepository(session).members(segment.id, principal, page)
    return CursorPage(items=[MemberRead.model_validate(m) for m in items], next_cursor=next_cursor)


@router.get(
    "/segments/{segment_id}/export",
    summary="Export a segment's members (CSV or NDJSON, streamed)",
    dependencies=READ,
    responses={
        200: {
            "content": {
                "text/csv": {"example": "customer_id,version,entered_at\n0f8f…,3,2026-11-23T…\n"},
                "application/x-ndjson": {
                    "example": '{"customer_id": "0f8f…", "version": 3, "entered_at": "…"}\n'
                },
            },
            "description": "Every member within your data scope, streamed in id order.",
        },
        **problem_responses(401, 403, 404, 422),
    },
)
async def export_members(
    segment: SegmentDep,
    principal: PrincipalDep,
    request: Request,
    format: Annotated[Literal["csv", "ndjson"], Query(description="Output format.")] = "csv",
) -> StreamingResponse:
    """The whole membership as a stream: the export reads it in pages of 2,000 in its own
    short transactions, so a slow client holds no database transaction open."""
    database: Database = request.app.state.database
    segment_id = segment.id

    async def rows() -> AsyncIterator[bytes]:
        if format == "csv":
            yield b"customer_id,version,entered_at\n"
        after: UUID | None = None
        while True:
            async with database.session() as session:
                batch = await SegmentRepository(session).members_after(segment_id, principal, after)
            if not batch:
                return
            if format == "csv":
                yield "".join(
                    f"{m.customer_id},{m.version},{m.entered_at.isoformat()}\n" for m in batch
                ).encode()
            else:
                yield "".join(
                    json.dumps(
                        {
                            "customer_id": str(m.customer_id),
                            "version": m.version,
                            "entered_at": m.entered_at.isoformat(),
                        }
                    )
                    + "\n"
                    for m in batch
                ).encode()
            after = batch[-1].customer_id

    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        rows(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="segment-{segment_id}.{format}"'},
    )


@router.get(
    "/customers/{customer_id}/segments",
    summary="The segments a customer is in",
    dependencies=READ,
    responses=problem_responses(401, 403, 422),
)
async def customer_segments(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep
) -> list[CustomerSegment]:
    """Every segment the customer belongs to now, with the version and time they entered.
    An empty list for a customer outside your data scope or in no segment."""
    rows = await SegmentRepository(session).customer_segments(customer_id, principal)
    return [
        CustomerSegment(
            segment_id=s.id, name=s.name, kind=s.kind, version=m.version, entered_at=m.entered_at
        )
        for m, s in rows
    ]
