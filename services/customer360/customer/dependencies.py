from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from services.customer360.customer.repository import CustomerRepository
from services.customer360.models import Customer
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import NotFound, RapportError

#: How many merges deep a merged-away id is followed to its survivor.
_MAX_MERGE_HOPS = 16


class Gone(RapportError):
    status = 410
    slug = "customer-erased"


async def get_customer_or_404(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep, request: Request
) -> Customer:
    """The customer, following merges: a merged-away id resolves to its survivor.

    Outside the caller's data scope looks exactly like not existing (no 403 that would confirm
    another team's customer exists); an erased customer answers 410 Gone.
    """
    repository = CustomerRepository(session)
    customer = await repository.get(customer_id, principal)
    hops = 0
    while customer is not None and customer.merged_into is not None and hops < _MAX_MERGE_HOPS:
        customer = await repository.get(customer.merged_into, principal)
        hops += 1
    if customer is None or customer.status == "merged":
        raise NotFound(f"customer {customer_id} does not exist")
    if customer.status == "erased":
        raise Gone(f"customer {customer_id} was erased at the person's request")
    if customer.id != customer_id:
        request.state.merged_into = customer.id
    return customer


CustomerDep = Annotated[Customer, Depends(get_customer_or_404)]
