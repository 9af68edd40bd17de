from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import Customer
from shared.pagination import CursorParams, paginate


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: UUID) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def add(self, customer: Customer) -> Customer:
        self.session.add(customer)
        await self.session.flush()
        await self.session.refresh(customer)
        return customer

    async def list(
        self, params: CursorParams, *, tag: str | None = None
    ) -> tuple[list[Customer], str | None]:
        statement = select(Customer)
        if tag is not None:
            statement = statement.where(Customer.tags.contains([tag]))
        return await paginate(
            self.session,
            statement,
            keys=[Customer.created_at, Customer.id],
            key_of=lambda c: (c.created_at, c.id),
            params=params,
        )
