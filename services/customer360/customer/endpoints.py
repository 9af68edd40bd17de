from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from services.customer360.customer import service
from services.customer360.customer.dependencies import CustomerDep
from services.customer360.customer.repository import CustomerRepository
from services.customer360.customer.schemas import CustomerCreate, CustomerRead
from shared.auth import PrincipalDep, require_scopes
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import CursorDep, CursorPage

router = APIRouter(prefix="/customers", tags=["customers"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    dependencies=[Depends(require_scopes("customers:write"))],
    responses=problem_responses(401, 403, 413),
)
async def create_customer(
    body: CustomerCreate, session: SessionDep, principal: PrincipalDep
) -> CustomerRead:
    """Create a customer profile. Publishes `rapport.customer.created.v1`."""
    customer = await service.create_customer(session, body, principal)
    return CustomerRead.for_principal(customer, principal)


@router.get(
    "/{customer_id}",
    summary="Get a customer",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403, 404),
)
async def get_customer(customer: CustomerDep, principal: PrincipalDep) -> CustomerRead:
    """One customer profile by id; `404` also when it is outside the caller's data scope."""
    return CustomerRead.for_principal(customer, principal)


@router.get(
    "",
    summary="List customers",
    dependencies=[Depends(require_scopes("customers:read"))],
    responses=problem_responses(401, 403),
)
async def list_customers(
    session: SessionDep,
    page: CursorDep,
    principal: PrincipalDep,
    tag: Annotated[str | None, Query(max_length=100, description="Only with this tag.")] = None,
) -> CursorPage[CustomerRead]:
    """Customers within the caller's data scope, oldest first, one page at a time."""
    items, next_cursor = await CustomerRepository(session).list(page, principal, tag=tag)
    return CursorPage(
        items=[CustomerRead.for_principal(c, principal) for c in items], next_cursor=next_cursor
    )
