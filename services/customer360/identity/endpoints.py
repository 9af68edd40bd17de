from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from services.customer360.customer.dependencies import CustomerDep
from services.customer360.customer.repository import CustomerRepository
from services.customer360.customer.schemas import CustomerRead
from services.customer360.customer.service import etag
from services.customer360.identity import service
from services.customer360.identity.schemas import (
    Duplicate,
    Duplicates,
    MergeRequest,
    ResolveRequest,
    ResolveResult,
)
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(tags=["customers"])


@router.post(
    "/customers:resolve",
    summary="Resolve an identity to a customer",
    dependencies=[Depends(require_scopes("customers:read", "customers:write"))],
    responses={
        201: {"model": ResolveResult, "description": "Nobody matched: a new prospect"},
        **problem_responses(401, 403, 404, 422),
    },
)
async def resolve_customer(
    body: ResolveRequest,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
) -> ResolveResult:
    """For services and partners holding only an e-mail, a phone or their own id: the
    customer who owns it (`200`), or a new prospect that now owns all the given keys
    (`201`; `404` instead with `create: false`). Safe to call concurrently: two resolves of
    the same new e-mail make one customer. A merged-away customer's keys belong to its
    survivor, so the survivor is what resolves."""
    customer, created, matched, others = await service.resolve(
        session, body, principal, default_region=request.app.state.settings.default_phone_region
    )
    visible = await CustomerRepository(session).get(customer.id, principal)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return ResolveResult(
        customer_id=customer.id,
        created=created,
        matched_by=matched,
        other_customers=others,
        customer=CustomerRead.for_principal(visible, principal) if visible else None,
    )


@router.get(
    "/customers/{customer_id}/duplicates",
    summary="Likely duplicates of a customer",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404, 410, 422),
)
async def customer_duplicates(
    customer: CustomerDep,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Duplicates:
    """Active customers of the same kind, within your data scope, that are probably the same
    person or company, best first — candidates for `:merge`. Reasons (weight): `same_name`
    (0.6), `similar_name` (0.4, trigram or shared Chinese characters), `same_phone_number`
    (0.5, the same last 8 digits), `same_email_local_part` (0.45, on another domain),
    `same_birthday` (0.35), `same_company` (0.2); `score` = 1 - Π(1 - weight)."""
    found = await service.duplicates_of(session, customer, principal, limit)
    return Duplicates(
        items=[
            Duplicate(
                score=score,
                reasons=reasons,
                customer=CustomerRead.for_principal(other, principal),
            )
            for other, score, reasons in found
        ]
    )


@router.post(
    "/customers/{customer_id}:merge",
    summary="Merge duplicates into a customer",
    dependencies=[Depends(require_scopes("customers:write"))],
    responses=problem_responses(401, 403, 404, 409, 410, 412, 422),
)
async def merge_customers(
    customer: CustomerDep,
    body: MergeRequest,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: Annotated[str | None, Header(max_length=40)] = None,
) -> CustomerRead:
    """Fold `merged_ids` into this customer, who survives. Survivorship: the survivor's
    values win; empty fields are filled from the duplicates; e-mails, phones, tags,
    addresses, external ids and custom fields are united; per consent channel the most recent
    decision wins. The duplicates' ids keep resolving to the survivor; every service moves
    their records (orders, interactions, segment membership) on `rapport.customer.merged.v1`.
    Merging a customer into itself is `422`; an already merged or erased one `409`."""
    survivor = await service.merge(session, customer, body.merged_ids, principal, if_match=if_match)
    response.headers["ETag"] = etag(survivor)
    return CustomerRead.for_principal(survivor, principal)


@router.delete(
    "/customers/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a customer (right to erasure)",
    dependencies=[Depends(require_scopes("customers:write", "customers:pii"))],
    responses=problem_responses(401, 403, 404, 410),
)
async def erase_customer(
    customer: CustomerDep, session: SessionDep, principal: PrincipalDep
) -> None:
    """Erase the person everywhere: the profile keeps only its id (`410` from now on), its
    identity keys are released, its audit trail redacted, and `rapport.customer.erased.v1`
    makes every service delete or anonymise what it holds. Customers merged into it are
    erased with it. A second erase answers `410`."""
    await service.erase(session, customer, principal)
