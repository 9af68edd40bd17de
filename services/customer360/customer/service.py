from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.customer.repository import CustomerRepository
from services.customer360.customer.schemas import CustomerCreate
from services.customer360.models import Customer
from shared.auth import Principal
from shared.events import CustomerCreated
from shared.messaging import publish


async def create_customer(
    session: AsyncSession, data: CustomerCreate, principal: Principal
) -> Customer:
    """Store a new profile and queue ``CustomerCreated`` in the same transaction."""
    owner_id = data.owner_id or (principal.subject if principal.kind == "user" else None)
    customer = await CustomerRepository(session).add(
        Customer(
            kind=data.kind,
            display_name=data.display_name,
            emails=[str(e).lower() for e in data.emails],
            phones=list(data.phones),
            tags=list(dict.fromkeys(data.tags)),
            owner_id=owner_id,
            team_id=data.team_id or principal.team,
        )
    )
    await publish(
        session,
        CustomerCreated(
            customer_id=customer.id,
            kind=data.kind,
            display_name=customer.display_name,
            emails=customer.emails,
            phones=customer.phones,
            tags=customer.tags,
            owner_id=customer.owner_id,
            team_id=customer.team_id,
            created_at=customer.created_at or datetime.now(UTC),
        ),
    )
    return customer
