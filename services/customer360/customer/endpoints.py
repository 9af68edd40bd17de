import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm.exc import StaleDataError

from services.customer360.customer import identity, service
from services.customer360.customer.dependencies import CustomerDep
from services.customer360.customer.repository import CustomerFilter, CustomerRepository, SortKey
from services.customer360.customer.schemas import (
    PII_FIELDS,
    AuditEntryRead,
    CustomerCreate,
    CustomerPatch,
    CustomerRead,
    masked_pii,
)
from services.customer360.models import Customer
from services.customer360.models.base import Base
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import BadRequest, PreconditionFailed, problem_responses
from shared.etag import ETAG_RESPONSE, IfMatch
from shared.idempotency import IdempotencyKeyHeader, claim_key
from shared.pagination import CursorDep, CursorPage
from shared.privacy import PII_SCOPE

router = APIRouter(prefix="/customers", tags=["customers"])

_IDEMPOTENCY = Base.metadata.tables["customer360.idempotency_key"]


def _with_etag(response: Response, customer: Customer) -> None:
    response.headers["ETag"] = service.etag(customer)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    dependencies=[Depends(require_scopes("customers:write"))],
    responses={
        201: {"description": "Created", **ETAG_RESPONSE},
        200: {
            "model": CustomerRead,
            "description": "`on_conflict=update`: the existing "
            "customer owning one of the identity keys, updated",
        },
        **problem_responses(400, 401, 403, 409, 413, 422),
    },
)
async def create_customer(
    body: CustomerCreate,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
    on_conflict: Annotated[
        Literal["error", "update"],
        Query(
            description="When an e-mail, phone or external id already belongs to a customer: "
            "`error` answers 409 naming it; `update` applies this body to it as a merge patch."
        ),
    ] = "error",
) -> CustomerRead:
    """Create a person or company profile.

    E-mails are normalised (lower case), phones stored as E.164, custom fields validated
    against their definitions. No two customers share an e-mail, phone or external id: a
    conflict answers `409` with `existing_customer_id`, or updates that customer with
    `on_conflict=update`. With an `Idempotency-Key`, a retry returns the first answer.
    Publishes `rapport.customer.created.v1` (and `consent_changed.v1` per consent given).
    """
    claim = await claim_key(
        session,
        _IDEMPOTENCY,
        principal.subject,
        idempotency_key,
        operation=f"create_customer:{on_conflict}",
        payload=body.model_dump(mode="json", exclude_unset=True),
    )
    if (replayed := claim.replayed(etag=True)) is not None:
        return replayed  # type: ignore[return-value]
    settings = request.app.state.settings
    try:
        customer = await service.create_customer(
            session, body, principal, default_region=settings.default_phone_region
        )
        response.status_code = status.HTTP_201_CREATED
    except identity.DuplicateIdentity as exc:
        if on_conflict == "error" or len(set(exc.existing.values())) > 1:
            raise
        existing = await CustomerRepository(session).get(exc.customer_id, principal)
        if existing is None:  # owned by a customer outside the caller's scope
            raise
        patch = CustomerPatch.model_validate(body.model_dump(exclude_unset=True, exclude={"kind"}))
        customer = await service.update_customer(
            session, existing, patch, principal, default_region=settings.default_phone_region
        )
        response.status_code = status.HTTP_200_OK
    read = CustomerRead.for_principal(customer, principal)
    await claim.complete(response.status_code, read.model_dump(mode="json"))
    _with_etag(response, customer)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/customers/{customer.id}"
    return read


@router.get(
    "/{customer_id}",
    summary="Get a customer",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses={200: ETAG_RESPONSE, **problem_responses(401, 403, 404, 410)},
)
async def get_customer(
    customer: CustomerDep, principal: PrincipalDep, request: Request, response: Response
) -> CustomerRead:
    """One profile by id. The id of a customer merged into another answers with the
    survivor (its id in `Content-Location`); `404` also when outside the caller's data
    scope; `410` once erased."""
    _with_etag(response, customer)
    if getattr(request.state, "merged_into", None) is not None:
        response.headers["Content-Location"] = f"/customers/{customer.id}"
    return CustomerRead.for_principal(customer, principal)


@router.patch(
    "/{customer_id}",
    summary="Update a customer",
    dependencies=[Depends(require_scopes("customers:write"))],
    responses={200: ETAG_RESPONSE, **problem_responses(400, 401, 403, 404, 409, 410, 412, 422)},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/merge-patch+json": {
                    "schema": {"$ref": "#/components/schemas/CustomerPatch"}
                }
            }
        }
    },
)
async def update_customer(
    customer: CustomerDep,
    body: CustomerPatch,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    """Change a profile with a JSON Merge Patch (RFC 7396). Send `If-Match` with the `ETag`
    from your last read to be safe against lost updates. Identity changes are checked like on
    create (`409` when another customer owns the e-mail or phone). Publishes
    `rapport.customer.updated.v1` with the new values, and `consent_changed.v1` per channel."""
    try:
        customer = await service.update_customer(
            session,
            customer,
            body,
            principal,
            if_match=if_match,
            default_region=request.app.state.settings.default_phone_region,
        )
    except StaleDataError:
        raise PreconditionFailed("the customer was changed concurrently; read it again") from None
    _with_etag(response, customer)
    return CustomerRead.for_principal(customer, principal)


def _custom_field_filters(values: list[str]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequest(
                "custom_field filters are key:value",
                errors=[{"pointer": "/query/custom_field", "detail": raw}],
            )
        try:
            filters[key] = json.loads(value)
        except ValueError:
            filters[key] = value
    return filters


@router.get(
    "",
    summary="List customers",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(400, 401, 403),
)
async def list_customers(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    tag: Annotated[list[str], Query(max_length=20, description="Has every tag given.")] = [],  # noqa: B006
    owner_id: Annotated[str | None, Query(max_length=200)] = None,
    team_id: Annotated[str | None, Query(max_length=100)] = None,
    lifecycle_stage: Annotated[
        str | None,
        Query(
            max_length=30,
            description="As segmentation last computed it, else as set on the profile.",
        ),
    ] = None,
    segment_id: Annotated[
        UUID | None, Query(description="Currently a member of this segment.")
    ] = None,
    kind: Literal["person", "company"] | None = None,
    company_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    custom_field: Annotated[
        list[str],
        Query(
            max_length=10,
            description="`key:value`, e.g. `membership_level:gold` or `vip:true` (JSON "
            "values are read as JSON, anything else as text).",
        ),
    ] = [],  # noqa: B006
    sort: Annotated[
        SortKey, Query(description="Field to sort on; a leading `-` sorts descending.")
    ] = "created_at",
) -> CursorPage[CustomerRead]:
    """Active customers within the caller's data scope, filtered, one page at a time."""
    where = CustomerFilter(
        kind=kind,
        tags=tag,
        owner_id=owner_id,
        team_id=team_id,
        lifecycle_stage=lifecycle_stage,
        segment_id=segment_id,
        company_id=company_id,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        custom_fields=_custom_field_filters(custom_field),
    )
    items, next_cursor = await CustomerRepository(session).list_page(page, principal, where, sort)
    return CursorPage(
        items=[CustomerRead.for_principal(c, principal) for c in items], next_cursor=next_cursor
    )


@router.get(
    "/{customer_id}/audit",
    summary="A customer's audit trail",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404, 410),
)
async def customer_audit(
    customer: CustomerDep, session: SessionDep, page: CursorDep, principal: PrincipalDep
) -> CursorPage[AuditEntryRead]:
    """Every change to the profile, newest first: who, when, and each field before and
    after (personal data masked without `customers:pii`)."""
    entries, next_cursor = await CustomerRepository(session).audit(customer.id, page)
    items = [AuditEntryRead.model_validate(e) for e in entries]
    if not principal.has(PII_SCOPE):
        items = [_masked_entry(e) for e in items]
    return CursorPage(items=items, next_cursor=next_cursor)


def _masked_entry(entry: AuditEntryRead) -> AuditEntryRead:
    changes = dict(entry.changes)
    for field in PII_FIELDS & changes.keys():
        change = changes[field]
        changes[field] = {
            side: masked_pii({field: change.get(side)})[field] for side in ("before", "after")
        }
    return entry.model_copy(update={"changes": changes})
