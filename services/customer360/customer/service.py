from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.customer.repository import CustomerRepository
from services.customer360.customer.schemas import CustomerCreate
from services.customer360.models import Customer
from shared.events import CustomerCreated
from shared.messaging import publish


async def create_customer(session: AsyncSession, data: CustomerCreate) -> Customer:
    """Store a new profile and queue ``CustomerCreated`` in the same transaction."""
    customer = await CustomerRepository(session).add(
        Customer(
            kind=data.kind,
            display_name=data.display_name,
            emails=[str(e).lower() for e in data.emails],
            phones=list(data.phones),
            tags=list(dict.fromkeys(data.tags)),
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
            created_at=customer.created_at or datetime.now(UTC),
        ),
    )
    return customer
