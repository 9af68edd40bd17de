from typing import Annotated
from uuid import UUID

from fastapi import Depends

from services.customer360.customer.repository import CustomerRepository
from services.customer360.models import Customer
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import NotFound


async def get_customer_or_404(
    customer_id: UUID, session: SessionDep, principal: PrincipalDep
) -> Customer:
    # Outside the caller's data scope looks exactly like not existing: no 403 that would
    # confirm another team's customer exists.
    customer = await CustomerRepository(session).get(customer_id, principal)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return customer


CustomerDep = Annotated[Customer, Depends(get_customer_or_404)]
