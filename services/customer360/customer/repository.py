from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer360.models import Customer
from shared.auth import Principal
from shared.pagination import CursorParams, paginate
from shared.privacy import data_scope


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: UUID, principal: Principal) -> Customer | None:
        """The customer, if it exists within the principal's data scope."""
        return (
            await self.session.scalars(
                select(Customer).where(
                    Customer.id == customer_id,
                    data_scope(principal, Customer.owner_id, Customer.team_id),
                )
            )
        ).one_or_none()

    async def add(self, customer: Customer) -> Customer:
        self.session.add(customer)
        await self.session.flush()
        await self.session.refresh(customer)
        return customer

    async def list(
        self, params: CursorParams, principal: Principal, *, tag: str | None = None
    ) -> tuple[list[Customer], str | None]:
        statement = select(Customer).where(
            data_scope(principal, Customer.owner_id, Customer.team_id)
        )
        if tag is not None:
            statement = statement.where(Customer.tags.contains([tag]))
        return await paginate(
            self.session,
            statement,
            keys=[Customer.created_at, Customer.id],
            key_of=lambda c: (c.created_at, c.id),
            params=params,
        )
